"""Consumer groups (seed ``/api/v1/consumer-groups``): create, list, lag, rebalance.

``{id}`` may be a consumer group the API created (id or name: its lag covers every
subscription that names it), a subscription id, or any Kafka group id in the tenant's namespace
(``<app_id>.<tenant>.``). Lag is end offset minus committed offset for each partition.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb.delivery.lag import PartitionLag, as_dict, committed_total, partition_lags
from esb.delivery.models import (
    ConsumerGroupCreate,
    ConsumerGroupCreated,
    ConsumerLagResponse,
    SubscriptionState,
    parse_model,
)
from esb.delivery.names import group_namespace, redeliver_topic
from esb.errors import Conflict, NotFound
from esb.views.http import json_response, principal, read_json

blueprint = Blueprint("consumer_groups")


def _linked(feature: Any, tenant: str, group: dict[str, Any]) -> list[dict[str, Any]]:
    names = {group["group_id"], group["group_name"]}
    return [s for s in feature.subscriptions.list(tenant)
            if s["consumer_group_id"] in names and s["status"] != SubscriptionState.CANCELLED]


def _resolve(view: View, tenant: str, ref: str
             ) -> tuple[str, str, list[dict[str, Any]], bool]:
    """(group id, group name, subscriptions behind it, managed by the bus)."""
    feature = view.app.delivery
    group = feature.groups.find(tenant, ref)
    if group is not None:
        return group["group_id"], group["group_name"], _linked(feature, tenant, group), True
    for sub in feature.subscriptions.list(tenant):
        if ref in (sub["subscription_id"], sub["kafka_group_id"]):
            return sub["kafka_group_id"], sub["subscription_name"], [sub], True
    if ref.startswith(group_namespace(view.app.runtime.settings.app_id, tenant)):
        return ref, ref, [], False
    raise NotFound(f"consumer group {ref!r} not found", group_id=ref)


@blueprint.route("/consumer-groups", name="consumer-groups")
class ConsumerGroupsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        feature = self.app.delivery
        groups = [{**g, "subscriptions": [s["subscription_id"]
                                          for s in _linked(feature, who.tenant, g)]}
                  for g in feature.groups.list(who.tenant)]
        return json_response({"consumer_groups": groups, "total": len(groups)})

    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = parse_model(ConsumerGroupCreate, await read_json(request, 65536))
        group = await self.app.delivery.groups.create(body, tenant=who.tenant, user=who.subject)
        created = ConsumerGroupCreated(group_id=group["group_id"])
        return json_response({**created.model_dump(), "consumer_group": group}, status=201)


@blueprint.route("/consumer-groups/{group_id}/lag", name="consumer-group-lag")
class ConsumerGroupLagView(View):
    async def get(self, request: web.Request, group_id: str) -> web.Response:
        who = principal(request)
        feature = self.app.delivery
        resolved_id, name, subs, managed = _resolve(self, who.tenant, group_id)
        rows: list[PartitionLag] = []
        members = 0
        rebalances: list[float] = []
        kafka_groups = [s["kafka_group_id"] for s in subs]
        for sub in subs:
            rows += await feature.offsets.group_lag(
                sub["kafka_group_id"], list(sub["topics"].values()), sub.get("start_offsets"))
            members += await feature.offsets.members(sub["kafka_group_id"])
            when = await feature.worker.stats.last_rebalance(sub["kafka_group_id"])
            if when is not None:
                rebalances.append(when)
        if not managed:  # a Kafka group of this tenant: every partition it has committed on
            topics = [t for s in self.app.runtime.streams.directory.list(who.tenant)
                      for t in s["topics"].values()]
            topics.append(redeliver_topic(self.app.runtime.topics, who.tenant))
            rows = [r for r in await feature.offsets.group_lag(resolved_id, topics)
                    if r.committed is not None]
            members = await feature.offsets.members(resolved_id)
            kafka_groups = [resolved_id]
        rate = feature.rates.observe(resolved_id, committed_total(rows), time.monotonic())
        response = ConsumerLagResponse.build(
            group_id=resolved_id, group_name=name, partition_lags=partition_lags(rows),
            consumption_rate=rate, active_consumers=members,
            last_rebalance=datetime.fromtimestamp(max(rebalances), UTC) if rebalances else None)
        return json_response({**response.model_dump(mode="json"), "partitions": as_dict(rows),
                              "kafka_group_ids": kafka_groups})


@blueprint.route("/consumer-groups/{group_id}/rebalance", name="consumer-group-rebalance")
class ConsumerGroupRebalanceView(View):
    async def post(self, request: web.Request, group_id: str) -> web.Response:
        who = principal(request)
        feature = self.app.delivery
        resolved_id, _name, subs, managed = _resolve(self, who.tenant, group_id)
        if not managed:
            raise Conflict(f"group {resolved_id!r} is not managed by the bus; rebalance it from "
                           "its own consumers", group_id=resolved_id)
        active = [s for s in subs if s["status"] == SubscriptionState.ACTIVE]
        if not active:
            raise Conflict(f"group {resolved_id!r} has no active subscription to rebalance",
                           group_id=resolved_id)
        for sub in active:
            await feature.subscriptions.request_rebalance(sub)
        return json_response({"group_id": resolved_id,
                              "subscriptions": [s["subscription_id"] for s in active],
                              "message": "Consumer group rebalance triggered successfully"},
                             status=202)
