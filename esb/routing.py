"""The Kafka ingress's side of the publish decision: a record's headers in, a Route out.

Pure and allocation-light, because it runs for every event on the Kafka ingress path: the payload
is never decoded here (only CloudEvents structured-mode records, whose attributes live in the body,
are parsed, once, and turned into binary mode). What is accepted, and why not, is decided by
:mod:`esb.publish_decision`, as for the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from esb import jsonsafe
from esb.envelope import (
    CE_JSON,
    attributes_from_kafka_headers,
    envelopes_from_structured,
)
from esb.errors import EsbError
from esb.publish_decision import Decision, PayloadChecks, PublishDecision, Rejected
from esb.stage_history import HISTORY_HEADER
from esb.streams import StreamDirectory

Headers = Sequence[tuple[str, bytes]]


@dataclass(slots=True)
class Route:
    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    codec: str | None
    tenant: str
    stream: str
    lane: str
    event_type: str
    has_history: bool = False
    #: personal fields to seal before producing: ``IngressRouter.seal``
    sealing: tuple[Decision, dict[str, str]] | None = None


class IngressRouter:
    """The Kafka ingress's side of the publish decision: from a record's headers to a Route."""

    def __init__(self, directory: StreamDirectory, *, max_event_bytes: int,
                 payload_checks: PayloadChecks | None = None) -> None:
        self.decision = PublishDecision(directory, max_event_bytes=max_event_bytes,
                                        payload_checks=payload_checks)

    def route(self, headers: Headers, key: bytes | None, value: bytes | None, *,
              tenant: str | None) -> Route:
        """Route one ingress record. ``tenant`` is the owner of the topic it was read from and
        is authoritative; ``None`` (no owner known) refuses the record."""
        try:
            attrs, content_type = attributes_from_kafka_headers(headers)
        except EsbError as exc:
            raise Rejected("invalid_attribute", exc.message, tenant) from None
        out_headers = list(headers)
        if "specversion" not in attrs and content_type.startswith(CE_JSON):
            attrs, content_type, value, out_headers = _structured_to_binary(value, tenant)
        if tenant is None:
            raise Rejected("missing_attribute", "the ingress topic belongs to no tenant",
                           attrs.get("tenantid"))
        decided = self.decision.decide(attrs, value, content_type, tenant=tenant)
        if "tenantid" not in attrs:
            out_headers.append(("ce_tenantid", tenant.encode()))
        if decided.reencoded:
            out_headers = [(k, v) for k, v in out_headers if k != "content-type"]
            out_headers.append(("content-type", decided.content_type.encode()))
        stream = decided.stream
        if not attrs.get("stream"):
            out_headers.append(("ce_stream", stream["stream_name"].encode()))
        partition_key = attrs.get("partitionkey") or attrs.get("aggregateid")
        return Route(
            topic=decided.topic,
            key=partition_key.encode() if partition_key else (key or attrs["id"].encode()),
            value=decided.data,
            headers=out_headers,
            codec=decided.codec,
            tenant=tenant,
            stream=stream["stream_name"],
            lane=decided.priority.value,
            event_type=attrs["type"],
            has_history=any(k == HISTORY_HEADER for k, _ in headers),
            sealing=(decided, attrs) if decided.personal else None,
        )

    async def seal(self, route: Route) -> None:
        """Encrypt the route's personal fields (only for routes with ``sealing``)."""
        assert route.sealing is not None
        decided, attrs = route.sealing
        route.value = await self.decision.seal(decided, attrs, route.tenant)
        route.sealing = None


def _structured_to_binary(value: bytes | None, tenant: str | None
                          ) -> tuple[dict[str, str], str, bytes | None, list[tuple[str, bytes]]]:
    try:
        body: Any = jsonsafe.loads(value or b"")
        (envelope,) = envelopes_from_structured(body)
    except (ValueError, EsbError) as exc:
        raise Rejected("undecodable", f"structured CloudEvent could not be parsed: {exc}",
                       tenant) from None
    headers = envelope.kafka_headers()
    return dict(envelope.attributes), envelope.content_type, envelope.data, headers
