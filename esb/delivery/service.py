"""Subscriptions and consumer groups as catalog metadata: create, read, cancel, rotate, replay.

Records live in the metadata catalog (kinds ``subscription`` and ``consumer_group``), so every
replica sees them and they survive restarts. Workers react to changes through a catalog listener
(see ``agents.delivery``). A subscription record carries the webhook secret only encrypted
(``webhook_secret_enc``); the clear secret is returned once, by ``create`` and ``rotate_secret``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from esb import ids
from esb.catalog import MetadataCatalog
from esb.delivery.models import ConsumerGroupCreate, SubscriptionCreate, SubscriptionState
from esb.delivery.names import (
    CONSUMER_GROUP_KIND,
    SUBSCRIPTION_KIND,
    redeliver_topic,
    subscription_group,
)
from esb.delivery.secretbox import SecretBox
from esb.delivery.signing import DEFAULT_ROTATION_GRACE_S, WebhookSecret
from esb.delivery.ssrf import SsrfGuard
from esb.errors import AlreadyExists, Conflict, NotFound
from esb.kafka import TopicAdmin, TopicSpec
from esb.quotas.limits import QuotaBook
from esb.streams import StreamDirectory
from esb.topics import TopicNames

__all__ = ["ConsumerGroupService", "SubscriptionService", "public_view"]

_PRIVATE = ("webhook_secret_enc", "previous_secret_enc", "previous_secret_expires_at",
            "start_offsets", "replay", "rebalance")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """A subscription record as the API shows it: never a secret, not even encrypted."""
    out = {k: v for k, v in record.items() if k not in _PRIVATE}
    if record.get("replay"):
        out["last_replay"] = {k: v for k, v in record["replay"].items() if k != "offsets"}
    return out


class SubscriptionService:
    def __init__(self, catalog: MetadataCatalog, directory: StreamDirectory, topics: TopicNames,
                 admin: TopicAdmin, *, app_id: str, box: SecretBox, guard: SsrfGuard,
                 replication_factor: int = 1, partitions: int = 3,
                 quotas: QuotaBook | None = None) -> None:
        self.catalog = catalog
        self.quotas = quotas
        self.directory = directory
        self.topics = topics
        self.admin = admin
        self.app_id = app_id
        self.box = box
        self.guard = guard
        self._rf = replication_factor
        self._partitions = partitions

    # --- reads --------------------------------------------------------------------------
    def list(self, tenant: str) -> list[dict[str, Any]]:
        items = self.catalog.current.list(SUBSCRIPTION_KIND, tenant)
        return sorted(items, key=lambda s: s["subscription_id"])

    def get(self, tenant: str, subscription_id: str) -> dict[str, Any]:
        record = self.catalog.current.get(SUBSCRIPTION_KIND, tenant, subscription_id)
        if record is None:
            raise NotFound(f"subscription {subscription_id!r} not found",
                           subscription_id=subscription_id)
        return record

    def lane_topics(self, record: dict[str, Any]) -> list[str]:
        return list(record["topics"].values())

    # --- writes -------------------------------------------------------------------------
    async def create(self, body: SubscriptionCreate, *, tenant: str, user: str,
                     start_offsets: dict[str, int]) -> tuple[dict[str, Any], str | None]:
        """Validate, persist, and return (record, clear secret shown once)."""
        if self.quotas is None:
            return await self._create(body, tenant=tenant, user=user, start_offsets=start_offsets)
        async with self.quotas.counting(tenant, "subscriptions"):  # count and create at once
            return await self._create(body, tenant=tenant, user=user, start_offsets=start_offsets)

    async def _create(self, body: SubscriptionCreate, *, tenant: str, user: str,
                      start_offsets: dict[str, int]) -> tuple[dict[str, Any], str | None]:
        stream = self.directory.get(tenant, body.stream_id)
        if stream is None:
            raise NotFound(f"stream {body.stream_id!r} not found", stream_id=body.stream_id)
        if any(s["subscription_name"] == body.subscription_name
               and s["status"] != SubscriptionState.CANCELLED for s in self.list(tenant)):
            raise AlreadyExists(f"subscription {body.subscription_name!r} already exists")
        if self.quotas is not None:  # cancelled ones no longer count (ADR 0016)
            self.quotas.check_count(tenant, "max_subscriptions", sum(
                1 for s in self.list(tenant) if s["status"] != SubscriptionState.CANCELLED))
        secret_text: str | None = None
        sealed: str | None = None
        if body.webhook_url is not None:
            await self.guard.check(body.webhook_url)  # 422 for private/loopback unless allowed
            if body.webhook_secret is not None:
                secret = WebhookSecret.parse(body.webhook_secret.get_secret_value())
            else:
                secret = WebhookSecret.generate()
                secret_text = secret.encoded
            sealed = self.box.seal(secret)
        subscription_id = ids.new_id("sub").lower()
        record = body.model_dump(mode="json", exclude={"webhook_secret"})
        record.update({
            "subscription_id": subscription_id,
            "tenant_id": tenant,
            "stream_name": stream["stream_name"],
            "topics": dict(stream["topics"]),
            "kafka_group_id": subscription_group(self.app_id, tenant, subscription_id),
            "status": SubscriptionState.ACTIVE.value,
            "created_at": _now(),
            "created_by": user,
            "generation": 1,
            "webhook_secret_enc": sealed,
            "start_offsets": start_offsets,
        })
        outcome = await self.catalog.write(SUBSCRIPTION_KIND, tenant, subscription_id, "create",
                                           record)
        if outcome.status != "created":
            raise AlreadyExists(f"subscription {subscription_id!r} already exists")
        return record, secret_text

    async def ensure_redeliver_topic(self, tenant: str) -> str:
        topic = redeliver_topic(self.topics, tenant)
        await self.admin.ensure_topics([TopicSpec(topic, self._partitions, self._rf)])
        return topic

    async def _put(self, record: dict[str, Any]) -> dict[str, Any]:
        await self.catalog.write(SUBSCRIPTION_KIND, record["tenant_id"],
                                 record["subscription_id"], "put", record)
        return record

    async def cancel(self, tenant: str, subscription_id: str) -> dict[str, Any]:
        record = dict(self.get(tenant, subscription_id))
        if record["status"] == SubscriptionState.CANCELLED:
            return record
        record.update(status=SubscriptionState.CANCELLED.value, cancelled_at=_now())
        return await self._put(record)

    async def disable(self, tenant: str, subscription_id: str, reason: str) -> dict[str, Any] | None:
        current = self.catalog.current.get(SUBSCRIPTION_KIND, tenant, subscription_id)
        if current is None or current["status"] != SubscriptionState.ACTIVE:
            return current
        record = dict(current)
        record.update(status=SubscriptionState.DISABLED.value, disabled_reason=reason,
                      disabled_at=_now())
        return await self._put(record)

    async def rotate_secret(self, tenant: str, subscription_id: str, *,
                            grace_s: float = DEFAULT_ROTATION_GRACE_S) -> tuple[dict[str, Any], str]:
        record = dict(self.get(tenant, subscription_id))
        if not record.get("webhook_secret_enc"):
            raise Conflict("this subscription has no webhook, so no secret to rotate")
        fresh = WebhookSecret.generate()
        record.update(previous_secret_enc=record["webhook_secret_enc"],
                      previous_secret_expires_at=time.time() + grace_s,
                      webhook_secret_enc=self.box.seal(fresh), secret_rotated_at=_now())
        return await self._put(record), fresh.encoded

    async def reseal_secrets(self) -> int:
        """Re-seal every stored webhook secret not sealed under the current key (after a key
        rotation; ADR 0018); returns how many subscriptions were rewritten."""
        rewritten = 0
        for record in self.catalog.current.list(SUBSCRIPTION_KIND):
            fields = [f for f in ("webhook_secret_enc", "previous_secret_enc")
                      if record.get(f) and self.box.stale(record[f])]
            if fields:
                await self._put({**record, **{f: self.box.reseal(record[f]) for f in fields}})
                rewritten += 1
        return rewritten

    async def replay(self, tenant: str, subscription_id: str, *, description: dict[str, Any],
                     offsets: dict[str, int]) -> dict[str, Any]:
        """Ask the subscription's consumers to seek back to ``offsets`` ("topic:partition")."""
        record = dict(self.get(tenant, subscription_id))
        if record["status"] != SubscriptionState.ACTIVE:
            raise Conflict(f"subscription is {record['status']}; only active ones replay")
        record["replay"] = {"replay_id": ids.new_id("rpl").lower(), "requested_at": _now(),
                            "offsets": offsets, **description}
        record["generation"] = int(record.get("generation", 1)) + 1
        return await self._put(record)

    async def request_rebalance(self, record: dict[str, Any]) -> dict[str, Any]:
        record = dict(record)
        record["rebalance"] = {"requested_at": _now()}
        record["generation"] = int(record.get("generation", 1)) + 1
        return await self._put(record)


class ConsumerGroupService:
    """Consumer groups the API creates: metadata that subscriptions join by name or id."""

    def __init__(self, catalog: MetadataCatalog) -> None:
        self.catalog = catalog

    def list(self, tenant: str) -> list[dict[str, Any]]:
        return sorted(self.catalog.current.list(CONSUMER_GROUP_KIND, tenant),
                      key=lambda g: g["group_name"])

    def find(self, tenant: str, ref: str) -> dict[str, Any] | None:
        """By group id (``grp_…``) or by name."""
        by_name = self.catalog.current.get(CONSUMER_GROUP_KIND, tenant, ref)
        if by_name is not None:
            return by_name
        return next((g for g in self.list(tenant) if g["group_id"] == ref), None)

    async def create(self, body: ConsumerGroupCreate, *, tenant: str, user: str
                     ) -> dict[str, Any]:
        record = body.model_dump(mode="json")
        record.update(group_id=ids.new_id("grp").lower(), tenant_id=tenant, created_at=_now(),
                      created_by=user, managed=True)
        outcome = await self.catalog.write(CONSUMER_GROUP_KIND, tenant, body.group_name,
                                           "create", record)
        if outcome.status != "created":
            existing = outcome.data or {}
            raise AlreadyExists(f"consumer group {body.group_name!r} already exists",
                                group_id=existing.get("group_id"))
        return record
