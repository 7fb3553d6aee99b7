"""``/ws/subscriptions/{subscription_id}``: live delivery updates, or the matching events.

A webhook subscription streams its delivery updates (every attempt's outcome, from any replica,
read from the delivery-status topic). A subscription without a webhook is a WebSocket consumer:
the connection receives the stream's events that pass the subscription's patterns, criteria and
CEL filter (``?mode=events`` asks for that on a webhook subscription too). Both read from the
end with a group-less consumer, so a viewer never moves committed offsets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from esb.delivery.matching import LazyPayload, SubscriptionMatcher
from esb.delivery.names import status_topic
from esb.envelope import Envelope, attributes_from_kafka_headers
from esb.kafka_security import kafka_client_options
from esb.views.http import principal
from esb.views.live import tail_to_websocket

log = logging.getLogger(__name__)


def make_handler(app: Any) -> Any:
    async def subscription_updates(request: web.Request) -> web.StreamResponse:
        who = principal(request)
        runtime = app.runtime
        sub = app.delivery.subscriptions.get(who.tenant, request.match_info["subscription_id"])
        events_mode = not sub.get("webhook_url") or request.query.get("mode") == "events"
        matcher = SubscriptionMatcher(sub.get("event_type_patterns") or ["*"],
                                      sub.get("filter_criteria") or {},
                                      sub.get("filter_expression"))
        topics = list(sub["topics"].values()) if events_mode else [status_topic(runtime.topics)]
        key = sub["subscription_id"].encode()
        return await tail_to_websocket(
            request, kafka_client_options(runtime.settings), topics,
            {"type": "subscribed", "subscription_id": sub["subscription_id"],
             "mode": "events" if events_mode else "deliveries"},
            lambda rec: _render(rec, events_mode, key, matcher), app.runtime.ws_slots)

    return subscription_updates


def _render(rec: Any, events_mode: bool, key: bytes, matcher: SubscriptionMatcher
            ) -> dict[str, Any] | None:
    if not events_mode:
        if rec.key != key:
            return None
        return json.loads(rec.value)  # type: ignore[no-any-return]
    attrs, ctype = attributes_from_kafka_headers(list(rec.headers or ()))
    if not matcher.matches(attrs, LazyPayload(rec.value or b"", ctype)):
        return None
    event = Envelope(attrs, rec.value or b"", ctype).to_structured()
    return {"type": "event", "partition": rec.partition, "offset": rec.offset, "event": event}
