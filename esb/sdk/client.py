"""The async client: one method per API operation, plain dicts in and out.

Bodies may be given as dicts or as the server's own pydantic request models (``StreamCreate``,
``EventIn``, ``SubscriptionCreate`` ...), which are serialised as the server parses them. Every
publish carries an ``Idempotency-Key`` equal to its event id, generated here when absent, so a
retry after a lost answer can never publish twice. Collections the API pages are async
iterators that follow the API's own cursor (``next_cursor`` / ``next_before``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from esb import ids
from esb.sdk.live import LiveTail
from esb.sdk.transport import RetryPolicy, Transport

CE_JSON = "application/cloudevents+json"
JSON = "application/json"
Body = Mapping[str, Any] | BaseModel


def _body(value: Body | None, **extra: Any) -> dict[str, Any]:
    base = (value.model_dump(mode="json", exclude_none=True, by_alias=False)
            if isinstance(value, BaseModel) else dict(value or {}))
    base.update({k: v for k, v in extra.items() if v is not None})
    return base


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def archived_item(event: Mapping[str, Any]) -> dict[str, Any]:
    """An archived event (seed field names) in the live tail's message shape."""
    return {"type": "archived", "partition": None, "offset": None, "event": {
        "specversion": "1.0", "id": event["event_id"], "type": event["event_type"],
        "source": event.get("source_capability"), "time": event.get("timestamp"),
        "stream": event.get("stream_name"), "data": event.get("payload")}}


class EsbClient:
    """``EsbClient(url=None, token=None)``; both default to ``$ESB_URL`` / ``$ESB_TOKEN``.

    Use as ``async with EsbClient() as esb:`` or call :meth:`close`. With ``persistent=False``
    every call opens and closes its own HTTP session (no cleanup needed, any event loop).
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 retry: RetryPolicy | None = None, timeout_s: float = 30.0,
                 persistent: bool = True) -> None:
        self.transport = Transport(url, token, retry=retry, timeout_s=timeout_s,
                                   persistent=persistent)

    @property
    def url(self) -> str:
        return self.transport.url

    async def __aenter__(self) -> EsbClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.transport.request(method, path, json_body=body, **kw)

    # ------------------------------------------------------------------ operations
    async def health(self) -> dict[str, Any]:
        return await self.transport.request("GET", "/health", api=False)

    # ------------------------------------------------------------------ streams
    async def list_streams(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/streams"))["streams"]

    async def create_stream(self, stream: Body | None = None, /, **fields: Any) -> dict[str, Any]:
        """Create a stream; answers ``{"stream_id", "stream", "message"}``."""
        return await self._call("POST", "/streams", _body(stream, **fields))

    async def get_stream(self, stream: str) -> dict[str, Any]:
        """A stream by id (``str_…``) or name."""
        return await self._call("GET", f"/streams/{_seg(stream)}")

    async def stream_events(self, stream: str, *, page_size: int = 100, order: str = "asc",
                            start_time: str | None = None, end_time: str | None = None
                            ) -> AsyncIterator[dict[str, Any]]:
        """Every archived event of a stream, page by page (keyset ``cursor``)."""
        cursor: str | None = None
        while True:
            page = await self._call("GET", f"/streams/{_seg(stream)}/events", params={
                "limit": page_size, "cursor": cursor, "order": order,
                "start_time": start_time, "end_time": end_time})
            for event in page["events"]:
                yield event
            cursor = page.get("next_cursor")
            if not cursor or not page["events"]:
                return

    def tail(self, stream: str, event_type: str = "*") -> LiveTail:
        """Events routed to ``stream`` from now on, over WebSocket (``event_type`` is a glob)."""
        return LiveTail(self.transport, stream, event_type)

    async def follow(self, stream: str, event_type: str = "*", *, from_beginning: bool = False
                     ) -> AsyncIterator[dict[str, Any]]:
        """Live events as :meth:`tail` gives them; with ``from_beginning`` the stream's archived
        events first (``"type": "archived"``, no partition/offset). The live tail is open before
        the archive is read and repeats are dropped by event id, so the hand-over loses only
        events the archive had not stored yet when it was read (the projection's lag)."""
        async with self.tail(stream, event_type) as live:
            seen: set[str] = set()
            if from_beginning:
                async for event in self.stream_events(stream):
                    if fnmatchcase(event["event_type"], event_type):
                        seen.add(event["event_id"])
                        yield archived_item(event)
            async for item in live:
                if item["event"].get("id") not in seen:
                    yield item

    # ------------------------------------------------------------------ publishing
    async def publish(self, event: Body | None = None, /, **fields: Any) -> dict[str, Any]:
        """Publish one event (seed body: ``event_type``, ``source_capability``, ``payload``…).

        Answers ``{"event_id", "stream_id", "partition", "offset", ...}`` once Kafka acked.
        """
        body = _body(event, **fields)
        body.setdefault("event_id", ids.event_id())
        return await self._send_once("/events", body, str(body["event_id"]), JSON)

    async def publish_cloudevent(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Publish one structured CloudEvent (``specversion`` and ``id`` filled in if absent)."""
        body = {"specversion": "1.0", **event}
        body.setdefault("id", ids.event_id())
        return await self._send_once("/events", body, str(body["id"]), CE_JSON)

    async def publish_batch(self, events: Sequence[Body]) -> dict[str, Any]:
        """Publish a batch, all-or-nothing; the key is derived from the batch's event ids."""
        bodies = [_body(e) for e in events]
        for body in bodies:
            body.setdefault("event_id", ids.event_id())
        key = "batch-" + hashlib.sha256(
            "\n".join(str(b["event_id"]) for b in bodies).encode()).hexdigest()[:40]
        return await self._send_once("/events/batch", {"events": bodies}, key, JSON)

    async def _send_once(self, path: str, body: Any, key: str, content_type: str) -> Any:
        """POST canonical JSON (sorted keys): the same event always has the same bytes, so the
        server's idempotency fingerprint matches on every retry, even across processes."""
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return await self.transport.request(
            "POST", path, data=data,
            headers={"Content-Type": content_type, "Idempotency-Key": key})

    # ------------------------------------------------------------------ read side
    async def get_event(self, event_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/events/{_seg(event_id)}")

    async def processing_history(self, event_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/events/{_seg(event_id)}/processing-history")

    async def query_events(self, query: Body | None = None, /, *, page_size: int = 100,
                           **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Archived events matching ``filters`` (``EventQuery`` fields), following cursors."""
        body = _body(query, **filters)
        body.setdefault("limit", page_size)
        while True:
            page = await self._call("POST", "/events/query", body)
            for event in page["events"]:
                yield event
            if not page.get("next_cursor") or not page["events"]:
                return
            body["cursor"] = page["next_cursor"]

    # ------------------------------------------------------------------ dead letters
    async def dead_letters(self, *, page_size: int = 100, **filters: Any
                           ) -> AsyncIterator[dict[str, Any]]:
        """Dead letters newest first (``reason``, ``stage``, ``event_type``, ``stream``,
        ``status``, ``since``, ``until``), following the ``before`` keyset cursor."""
        before: str | None = None
        while True:
            page = await self._call("GET", "/dead-letters",
                                    params={**filters, "limit": page_size, "before": before})
            for item in page["dead_letters"]:
                yield item
            before = page.get("next_before")
            if not before or page["count"] < page_size:
                return

    async def get_dead_letter(self, dlq_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/dead-letters/{_seg(dlq_id)}")

    async def redrive_dead_letter(self, dlq_id: str) -> dict[str, Any]:
        """Re-publish one dead letter, byte-exact, to its destination (same event id)."""
        return await self._call("POST", f"/dead-letters/{_seg(dlq_id)}/redrive")

    async def redrive_dead_letters(self, **filters: Any) -> dict[str, Any]:
        """Redrive every dead letter matching the filters (at most ``limit``, default 1000)."""
        return await self._call("POST", "/dead-letters/redrive", filters)

    # ------------------------------------------------------------------ schemas
    async def list_schemas(self, **params: Any) -> list[dict[str, Any]]:
        return (await self._call("GET", "/schemas", params=params))["schemas"]

    async def register_schema(self, schema: Body | None = None, /, **fields: Any
                              ) -> dict[str, Any]:
        return await self._call("POST", "/schemas", _body(schema, **fields))

    async def register_enhanced_schema(self, schema: Body | None = None, /, **fields: Any
                                       ) -> dict[str, Any]:
        return await self._call("POST", "/schemas/enhanced", _body(schema, **fields))

    async def get_schema(self, schema_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/schemas/{_seg(schema_id)}")

    async def validate(self, schema_id: str, data: Any) -> dict[str, Any]:
        """``{"is_valid", "validation_errors", ...}`` for ``data`` against a schema."""
        return await self._call("POST", f"/schemas/{_seg(schema_id)}/validate", data)

    async def schema_evolution(self, event_type: str) -> dict[str, Any]:
        return await self._call("GET", f"/schemas/evolution/{_seg(event_type)}")

    async def check_compatibility(self, event_type: str, schema: Any, *,
                                  schema_type: str = "JSON") -> dict[str, Any]:
        """``{"is_compatible", "messages"}``: would ``schema`` be accepted as the event type's
        next version under its compatibility level? (The registry's Confluent-compatible check
        against every version the level requires; subject ``<event_type>-value``.)"""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return await self.transport.request(
            "POST", f"/schema-registry/compatibility/subjects/{_seg(event_type + '-value')}"
                    "/versions", json_body={"schema": text, "schemaType": schema_type},
            params={"verbose": True}, api=False)

    # ------------------------------------------------------------------ event sourcing
    async def append(self, request: Body | None = None, /, **fields: Any) -> dict[str, Any]:
        """Append to an aggregate; ``expected_version`` mismatch raises ``VersionConflict``.
        The event id is fixed here so a retried append is recognised as a duplicate."""
        body = _body(request, **fields)
        body.setdefault("event_id", ids.event_id())
        return await self._call("POST", "/event-sourcing/append", body)

    async def reconstruct(self, request: Body | None = None, /, **fields: Any) -> dict[str, Any]:
        return await self._call("POST", "/event-sourcing/reconstruct", _body(request, **fields))

    async def aggregate_events(self, aggregate_id: str, **params: Any) -> dict[str, Any]:
        return await self._call("GET", f"/event-sourcing/aggregate/{_seg(aggregate_id)}/events",
                                params=params)

    # ------------------------------------------------------------------ subscriptions
    async def create_subscription(self, subscription: Body | None = None, /, **fields: Any
                                  ) -> dict[str, Any]:
        return await self._call("POST", "/subscriptions", _body(subscription, **fields))

    async def list_subscriptions(self, status: str | None = None) -> list[dict[str, Any]]:
        return (await self._call("GET", "/subscriptions",
                                 params={"status": status}))["subscriptions"]

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/subscriptions/{_seg(subscription_id)}")

    async def subscription_status(self, subscription_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/subscriptions/{_seg(subscription_id)}/status")

    async def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/subscriptions/{_seg(subscription_id)}")

    async def replay_subscription(self, subscription_id: str, *, from_time: str | None = None,
                                  from_offset: int | dict[str, int] | None = None
                                  ) -> dict[str, Any]:
        """Redeliver from a time (RFC 3339) or offsets (one for all partitions, or per
        partition); answers ``{"replay_id", "offsets", "job_id", "progress", ...}`` once the
        request is recorded: the replay is a job (:meth:`get_job`) that succeeds when the
        subscription has redelivered up to the end offsets of the moment of the request."""
        body = {k: v for k, v in (("from_time", from_time), ("from_offset", from_offset))
                if v is not None}
        return await self._call("POST", f"/subscriptions/{_seg(subscription_id)}/replay", body)

    async def get_job(self, job_id: str) -> dict[str, Any]:
        """A long operation's record: ``status`` (running, succeeded, failed), ``progress``
        ``{total, done, failed}``, ``error`` when it failed, ``result`` when it has one."""
        return await self._call("GET", f"/jobs/{_seg(job_id)}")

    # ------------------------------------------------------------------ consumer groups
    async def create_consumer_group(self, group: Body | None = None, /, **fields: Any
                                    ) -> dict[str, Any]:
        return await self._call("POST", "/consumer-groups", _body(group, **fields))

    async def list_consumer_groups(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/consumer-groups"))["consumer_groups"]

    async def consumer_lag(self, group: str) -> dict[str, Any]:
        """``{"group_id", "group_name", "total_lag", "partition_lags", ...}`` (id or name)."""
        return await self._call("GET", f"/consumer-groups/{_seg(group)}/lag")

    async def rebalance(self, group: str) -> dict[str, Any]:
        return await self._call("POST", f"/consumer-groups/{_seg(group)}/rebalance")

    # ------------------------------------------------------------------ stream processors
    async def create_processor(self, definition: Body | None = None, /, **fields: Any
                               ) -> dict[str, Any]:
        return await self._call("POST", "/stream-processors", _body(definition, **fields))

    async def list_processors(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/stream-processors"))["processors"]

    async def start_processor(self, processor_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/stream-processors/{_seg(processor_id)}/start")

    async def stop_processor(self, processor_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/stream-processors/{_seg(processor_id)}/stop")

    async def processor_metrics(self, processor_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/stream-processors/{_seg(processor_id)}/metrics")

