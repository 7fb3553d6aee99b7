"""The package's public API is explicit and importable; pure modules never load redis."""

from __future__ import annotations

import subprocess
import sys

import esb.delivery

EXPECTED = {
    "BATCH_CONTENT_TYPE", "DEFAULT_DELAY_TIERS_S", "AttemptLog", "AttemptResult",
    "BreakerConfig", "CircuitBreaker", "CircuitState", "Claim", "ClaimStatus",
    "ConsumerGroupCreate", "ConsumerGroupCreated", "ConsumerLagResponse", "DedupStore",
    "DelayTiers", "DeliveryAttempt", "DeliveryMode", "DeliveryRequest", "HttpParts",
    "InMemoryCircuitBreaker", "InMemoryDedupStore", "InMemoryRateLimiter", "LazyPayload",
    "NextAction", "NextStep", "OutboundEvent", "Outcome", "Permit", "RateDecision", "RateLimit",
    "RateLimiter", "RedisCircuitBreaker", "RedisDedupStore", "RedisRateLimiter",
    "ResolvedTarget", "RetryPolicy", "RetryPolicyConfig", "SigningKeys", "SsrfGuard",
    "SubscriptionCreate", "SubscriptionCreated", "SubscriptionMatcher", "SubscriptionState",
    "SubscriptionStatusResponse", "TypeMatcher", "UnsafeWebhookUrl", "WebhookHostUnresolvable",
    "WebhookSecret", "batch_webhook_id", "build_delivery_request", "check_url_syntax",
    "classify_exception", "classify_status", "decide_next_step", "encode_batch",
    "encode_binary", "endpoint_key", "limit_scope", "parse_model", "parse_retry_after", "webhook_headers",
}


def test_all_is_locked_and_resolvable() -> None:
    assert set(esb.delivery.__all__) == EXPECTED
    for name in esb.delivery.__all__:
        assert getattr(esb.delivery, name) is not None


def test_pure_import_does_not_load_redis_faust_or_aiohttp() -> None:
    code = ("import sys, esb.delivery; "
            "print(sorted(m for m in ('redis', 'faust', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
