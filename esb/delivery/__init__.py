"""Subscriptions and webhook delivery: the logic the Kafka wiring and the HTTP views call.

Modules, one job each:

- ``models``: request/response bodies (subscriptions, consumer groups, lag).
- ``matching``: does an event belong to a subscription (globs, attribute criteria, CEL).
- ``cloudevents_http``: CloudEvents over HTTP (binary / batched) + signed delivery request.
- ``signing``: Standard Webhooks signatures, secrets and rotation.
- ``retry``: outcome classification, backoff with jitter, delay tiers, attempt log.
- ``breaker`` / ``breaker_redis``: circuit breaker per (tenant, endpoint) (in-memory / Redis).
- ``ratelimit`` / ``ratelimit_redis``: GCRA rate limit per (tenant, endpoint) (in-memory / Redis).
- ``dedup`` / ``dedup_redis``: exactly-once dedup store, and what each delivery mode guarantees.
- ``ssrf``: refuse webhook URLs that reach private networks.

The Redis adapters are imported on first use, so the pure logic never loads ``redis``.
"""

from __future__ import annotations

import importlib
from typing import Any

from esb.delivery.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    InMemoryCircuitBreaker,
    Permit,
)
from esb.delivery.cloudevents_http import (
    BATCH_CONTENT_TYPE,
    DeliveryRequest,
    HttpParts,
    OutboundEvent,
    build_delivery_request,
    encode_batch,
    encode_binary,
)
from esb.delivery.dedup import Claim, ClaimStatus, DedupStore, InMemoryDedupStore
from esb.delivery.endpoints import endpoint_key, limit_scope
from esb.delivery.matching import LazyPayload, SubscriptionMatcher, TypeMatcher
from esb.delivery.models import (
    ConsumerGroupCreate,
    ConsumerGroupCreated,
    ConsumerLagResponse,
    DeliveryMode,
    RetryPolicyConfig,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionState,
    SubscriptionStatusResponse,
    parse_model,
)
from esb.delivery.ratelimit import InMemoryRateLimiter, RateDecision, RateLimit, RateLimiter
from esb.delivery.retry import (
    DEFAULT_DELAY_TIERS_S,
    AttemptLog,
    AttemptResult,
    DelayTiers,
    DeliveryAttempt,
    NextAction,
    NextStep,
    Outcome,
    RetryPolicy,
    classify_exception,
    classify_status,
    decide_next_step,
    parse_retry_after,
)
from esb.delivery.signing import SigningKeys, WebhookSecret, batch_webhook_id, webhook_headers
from esb.delivery.ssrf import (
    ResolvedTarget,
    SsrfGuard,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    check_url_syntax,
)

_LAZY = {
    "RedisCircuitBreaker": "esb.delivery.breaker_redis",
    "RedisRateLimiter": "esb.delivery.ratelimit_redis",
    "RedisDedupStore": "esb.delivery.dedup_redis",
}

__all__ = [
    "BATCH_CONTENT_TYPE",
    "DEFAULT_DELAY_TIERS_S",
    "AttemptLog",
    "AttemptResult",
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitState",
    "Claim",
    "ClaimStatus",
    "ConsumerGroupCreate",
    "ConsumerGroupCreated",
    "ConsumerLagResponse",
    "DedupStore",
    "DelayTiers",
    "DeliveryAttempt",
    "DeliveryMode",
    "DeliveryRequest",
    "HttpParts",
    "InMemoryCircuitBreaker",
    "InMemoryDedupStore",
    "InMemoryRateLimiter",
    "LazyPayload",
    "NextAction",
    "NextStep",
    "OutboundEvent",
    "Outcome",
    "Permit",
    "RateDecision",
    "RateLimit",
    "RateLimiter",
    "RedisCircuitBreaker",
    "RedisDedupStore",
    "RedisRateLimiter",
    "ResolvedTarget",
    "RetryPolicy",
    "RetryPolicyConfig",
    "SigningKeys",
    "SsrfGuard",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionMatcher",
    "SubscriptionState",
    "SubscriptionStatusResponse",
    "TypeMatcher",
    "UnsafeWebhookUrl",
    "WebhookHostUnresolvable",
    "WebhookSecret",
    "batch_webhook_id",
    "build_delivery_request",
    "check_url_syntax",
    "classify_exception",
    "classify_status",
    "decide_next_step",
    "encode_batch",
    "encode_binary",
    "endpoint_key",
    "limit_scope",
    "parse_model",
    "parse_retry_after",
    "webhook_headers",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
