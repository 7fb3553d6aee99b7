"""Publishing: validate an event, resolve its stream and lane, produce it, answer after the ack.

Shared by the HTTP views (single and batch). The Kafka ingress makes the same decisions through
``esb.routing.IngressRouter`` from headers alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from esb.envelope import Envelope
from esb.errors import NotFound, PayloadTooLarge, ValidationFailed
from esb.kafka import ProducerPool, acked
from esb.metrics import PUBLISH_LATENCY, PUBLISHED
from esb.readside.stages import append_stage, stage_entry
from esb.routing import PayloadChecks
from esb.streams import StreamDirectory, stream_name_from

VALIDATOR_ID = "proc_validation"


async def _no_sync() -> None:
    return None


class Publisher:
    def __init__(self, directory: StreamDirectory, producers: ProducerPool, *,
                 max_event_bytes: int, payload_checks: PayloadChecks,
                 sync: Callable[[], Awaitable[None]] | None = None) -> None:
        self.directory = directory
        self.sync = sync or _no_sync
        self.producers = producers
        self.max_event_bytes = max_event_bytes
        self.payload_checks = payload_checks

    def check(self, envelope: Envelope, tenant: str) -> dict[str, Any]:
        """Every check that can reject the event, before anything is sent. Returns the stream."""
        if len(envelope.data) > self.max_event_bytes:
            raise PayloadTooLarge(
                f"event {envelope.id} payload is {len(envelope.data)} bytes; the limit is "
                f"{self.max_event_bytes}", limit=self.max_event_bytes)
        envelope.attributes["tenantid"] = tenant
        hint = envelope.attributes.get("stream")
        stream = self.directory.resolve(tenant, hint, envelope.type, envelope.attributes.get("source"))
        if stream is None:
            if hint:
                raise NotFound(f"stream {hint!r} not found", stream_id=hint)
            raise ValidationFailed(
                f"no stream accepts event type {envelope.type!r} from source "
                f"{envelope.attributes.get('source')!r}; pass stream_id or create a stream with a "
                "matching source_capability or event_types",
                errors=[{"path": "$.stream_id", "message": "no route"}])
        envelope.attributes["stream"] = stream_name_from(stream["stream_name"])
        if self.payload_checks.checks:
            self.payload_checks(tenant, {f"ce_{k}": v for k, v in envelope.attributes.items()},
                               envelope.data, envelope.content_type)
        encoder = self.payload_checks.encoder_for(stream, envelope.content_type)
        if encoder is not None:
            envelope.data, envelope.content_type = encoder(tenant, envelope.type, envelope.data)
        return stream

    async def publish(self, envelope: Envelope, tenant: str, *, path: str = "http"
                      ) -> dict[str, Any]:
        (result,) = await self.publish_many([envelope], tenant, path=path)
        return result

    async def publish_many(self, envelopes: Sequence[Envelope], tenant: str, *,
                           path: str = "http") -> list[dict[str, Any]]:
        """All-or-nothing validation, then one produce per event; answers once all are acked."""
        started = time.perf_counter()
        t0 = time.time() * 1000
        try:
            streams = [self.check(env, tenant) for env in envelopes]
        except (NotFound, ValidationFailed):
            # maybe a stream created a moment ago on another replica: catch up once, re-check
            await self.sync()
            streams = [self.check(env, tenant) for env in envelopes]
        validated = stage_entry(VALIDATOR_ID, "VALIDATION", t0, time.time() * 1000,
                                output={"validation_result": "passed"})
        futures = []
        for env, stream in zip(envelopes, streams, strict=True):
            topic = self.directory.lane_topic(stream, env.priority)
            codec = None if stream["compression_type"] == "NONE" else stream["compression_type"].lower()
            futures.append(await self.producers.send(
                topic, env.data, key=env.kafka_key(),
                headers=append_stage(env.kafka_headers(), validated), codec=codec))
        metas = await asyncio.gather(*(acked(f, "stream") for f in futures))
        PUBLISH_LATENCY.labels(path).observe(time.perf_counter() - started)
        results = []
        for env, stream, meta in zip(envelopes, streams, metas, strict=True):
            PUBLISHED.labels(tenant, stream["stream_name"], env.priority.value, path).inc()
            results.append({
                "event_id": env.id,
                "stream_id": stream["stream_id"],
                "stream_name": stream["stream_name"],
                "topic": meta.topic,
                "partition": meta.partition,
                "offset": meta.offset,
                "priority": env.priority.value,
                "timestamp": env.attributes.get("time"),
            })
        return results
