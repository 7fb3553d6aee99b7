"""Names the delivery path gives Kafka things: groups, retry tiers, the redelivery topic, headers."""

from __future__ import annotations

from esb.topics import TopicNames

SUBSCRIPTION_KIND = "subscription"
CONSUMER_GROUP_KIND = "consumer_group"

# Headers the delivery path adds to records it forwards (retry tiers, dead letters, redelivery).
H_SUBSCRIPTION = "esb-sub-id"
H_TENANT = "esb-sub-tenant"
H_DUE_AT = "esb-retry-due"
H_ATTEMPTS = "esb-retry-log"
H_ORIGIN = "esb-retry-origin"
DELIVERY_HEADERS = frozenset({H_SUBSCRIPTION, H_TENANT, H_DUE_AT, H_ATTEMPTS, H_ORIGIN})


def group_namespace(app_id: str, tenant: str) -> str:
    """Every Kafka group the bus runs for a tenant starts with this."""
    return f"{app_id}.{tenant}."


def subscription_group(app_id: str, tenant: str, subscription_id: str) -> str:
    return f"{group_namespace(app_id, tenant)}{subscription_id}"


def tier_label(tier_s: float) -> str:
    return f"{tier_s:g}s"


def retry_topic(topics: TopicNames, tier_s: float) -> str:
    return f"{topics.prefix}.retry.{tier_label(tier_s)}"


def redeliver_topic(topics: TopicNames, tenant: str) -> str:
    """Redrive destination of delivery dead letters; under the tenant's prefix, so redrive allows it."""
    return f"{topics.prefix}.{tenant}._redeliver"


def status_topic(topics: TopicNames) -> str:
    """Delivery updates, keyed by subscription id, tailed by /ws/subscriptions/{id}."""
    return f"{topics.prefix}.delivery-status"
