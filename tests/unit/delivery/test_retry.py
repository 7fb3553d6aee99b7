"""Outcome classification, backoff with full jitter, delay tiers, the attempt log."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.delivery.models import RetryPolicyConfig
from esb.delivery.retry import (
    AttemptLog,
    AttemptResult,
    DelayTiers,
    NextAction,
    Outcome,
    RetryPolicy,
    classify_exception,
    classify_status,
    decide_next_step,
    parse_retry_after,
)
from esb.delivery.ssrf import UnsafeWebhookUrl, WebhookHostUnresolvable

NOW = 1_700_000_000.0


@pytest.mark.parametrize("status,outcome", [
    (200, Outcome.SUCCESS), (204, Outcome.SUCCESS), (299, Outcome.SUCCESS),
    (410, Outcome.DISABLE),
    (429, Outcome.RETRY), (503, Outcome.RETRY), (500, Outcome.RETRY), (502, Outcome.RETRY),
    (400, Outcome.RETRY), (401, Outcome.RETRY), (404, Outcome.RETRY), (301, Outcome.RETRY),
    (100, Outcome.RETRY),
])
def test_status_classification(status: int, outcome: Outcome) -> None:
    assert classify_status(status, {}, now=NOW).outcome is outcome


def test_operator_can_make_statuses_permanent() -> None:
    assert classify_status(400, now=NOW, permanent_statuses={400, 413}).outcome is Outcome.FAIL
    assert classify_status(404, now=NOW, permanent_statuses={400}).outcome is Outcome.RETRY
    # 2xx and 410 keep their meaning whatever is configured
    assert classify_status(410, now=NOW, permanent_statuses={410}).outcome is Outcome.DISABLE


def test_retry_after_seconds_and_http_date() -> None:
    assert classify_status(429, {"Retry-After": "120"}, now=NOW).retry_after_s == 120.0
    date = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert classify_status(503, {"retry-after": date}, now=NOW).retry_after_s == pytest.approx(90)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0  # in the past
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert classify_status(500, {"Retry-After": "5"}, now=NOW).retry_after_s is None


def test_exception_classification() -> None:
    assert classify_exception(TimeoutError()).outcome is Outcome.RETRY
    assert classify_exception(ConnectionResetError("reset")).outcome is Outcome.RETRY
    refused = UnsafeWebhookUrl("no", errors=[])
    assert classify_exception(refused).outcome is Outcome.FAIL
    assert classify_exception(WebhookHostUnresolvable("dns", errors=[])).outcome is Outcome.RETRY
    assert "reset" in classify_exception(ConnectionResetError("reset")).reason


def test_backoff_ceiling_doubles_and_caps() -> None:
    policy = RetryPolicy(max_retries=10, base_delay_s=1, max_delay_s=10)
    assert [policy.backoff_ceiling(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.backoff_ceiling(10_000) == 10
    with pytest.raises(ValueError):
        policy.backoff_ceiling(0)


def test_fixed_delay_without_exponential_backoff() -> None:
    policy = RetryPolicy(base_delay_s=2, exponential_backoff=False)
    assert {policy.next_delay(n) for n in (1, 2, 5)} == {2.0}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32))
def test_full_jitter_stays_within_ceiling(retry_number: int, seed: int) -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=300)
    delay = policy.next_delay(retry_number, rng=random.Random(seed))
    assert 0 <= delay <= policy.backoff_ceiling(retry_number)


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=600)
    rng = random.Random(7)
    delays = [policy.next_delay(6, rng=rng) for _ in range(200)]
    assert min(delays) < 8 and max(delays) > 24  # spread over [0, 32]


def test_retry_after_is_a_floor_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=4, max_retry_after_s=100)
    assert policy.next_delay(1, retry_after_s=50, rng=random.Random(1)) == 50
    assert policy.next_delay(1, retry_after_s=10_000, rng=random.Random(1)) == 100


def test_policy_from_api_config() -> None:
    policy = RetryPolicy.from_config(RetryPolicyConfig(
        max_retries=5, retry_delay_ms=250, exponential_backoff=False, max_retry_delay_ms=9000))
    assert policy == RetryPolicy(5, 0.25, False, 9.0)


@pytest.mark.parametrize("remaining,tier", [
    (-1, None), (0, None), (0.2, 1), (1, 1), (4.9, 1), (5, 5), (29, 5), (45, 30), (119, 30),
    (120, 120), (599, 120), (600, 600), (86_400, 600),
])
def test_tier_choice(remaining: float, tier: float | None) -> None:
    assert DelayTiers().choose(remaining) == tier


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=5000.0))
def test_hopping_through_tiers_is_never_early_and_late_by_less_than_a_tier(wait: float) -> None:
    tiers = DelayTiers()
    now, due_at, hops = 0.0, wait, 0
    while (tier := tiers.next_hop(due_at, now)) is not None:
        now += tier
        hops += 1
    assert now >= due_at
    assert now - due_at <= tiers.tiers[0]
    # greedy worst case below 600 s: 4x120 + 3x30 + 5x5 + 4x1 (+1 rounding up the rest)
    assert hops <= wait // tiers.tiers[-1] + 17


def test_bad_tiers_rejected() -> None:
    with pytest.raises(ValueError):
        DelayTiers([])
    with pytest.raises(ValueError):
        DelayTiers([0, 5])


def _step(outcome: Outcome, attempts: int, *, dlq: bool = True, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    return decide_next_step(AttemptResult(outcome, "r", retry_after), attempts_made=attempts,
                            policy=RetryPolicy(max_retries=2), dead_letter_enabled=dlq,
                            now=NOW, rng=random.Random(3))


def test_decisions() -> None:
    assert _step(Outcome.SUCCESS, 1).action is NextAction.DONE
    assert _step(Outcome.DISABLE, 1).action is NextAction.DISABLE
    assert _step(Outcome.FAIL, 1).action is NextAction.DEAD_LETTER
    assert _step(Outcome.FAIL, 1, dlq=False).action is NextAction.DROP
    first = _step(Outcome.RETRY, 1)
    assert first.action is NextAction.RETRY and first.due_at is not None
    assert NOW <= first.due_at <= NOW + 1
    assert _step(Outcome.RETRY, 2).action is NextAction.RETRY
    exhausted = _step(Outcome.RETRY, 3)  # first try + 2 retries
    assert exhausted.action is NextAction.DEAD_LETTER and "3 attempts" in exhausted.reason
    assert _step(Outcome.RETRY, 3, dlq=False).action is NextAction.DROP
    honoured = _step(Outcome.RETRY, 1, retry_after=45)
    assert honoured.due_at == NOW + 45 and honoured.tier_s == 30


def test_attempt_log_round_trip_and_bound() -> None:
    log = AttemptLog(max_kept=3)
    for n in range(5):
        log.record(started_at=NOW + n, duration_ms=12.5,
                   result=AttemptResult(Outcome.RETRY, "HTTP 500 " + "x" * 1000), status_code=500)
    log.record(started_at=NOW + 9, duration_ms=3, result=AttemptResult(Outcome.SUCCESS, "ok"),
               status_code=200)
    assert len(log) == 6
    assert [a.attempt for a in log.attempts] == [1, 5, 6]  # first kept, then the latest
    assert log.first_failure_at == NOW and log.last_failure_at == NOW + 4
    assert log.attempts[-1].error is None
    assert len(log.attempts[0].error or "") == 500
    restored = AttemptLog.from_json(log.to_json(), max_kept=3)
    assert restored.attempts == log.attempts and len(restored) == 6
    assert AttemptLog.from_json(None).attempts == []
