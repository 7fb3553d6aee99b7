"""Publishing over HTTP: the publish decision for each event, produce, answer after the ack.

Shared by the HTTP views (single and batch). The Kafka ingress asks the same decision
(:mod:`esb.publish_decision`) through ``esb.routing.IngressRouter``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from esb.envelope import Envelope
from esb.kafka import ProducerPool, acked
from esb.metrics import PUBLISH_LATENCY, PUBLISHED
from esb.publish_decision import Decision, PayloadChecks, PublishDecision, Rejected
from esb.stage_history import append_stage, stage_entry
from esb.streams import StreamDirectory

VALIDATOR_ID = "proc_validation"


async def _no_sync() -> None:
    return None


class Publisher:
    """The HTTP side of the publish decision: envelopes in, acknowledged records out."""

    def __init__(self, directory: StreamDirectory, producers: ProducerPool, *,
                 max_event_bytes: int, payload_checks: PayloadChecks,
                 sync: Callable[[], Awaitable[None]] | None = None) -> None:
        self.decision = PublishDecision(directory, max_event_bytes=max_event_bytes,
                                        payload_checks=payload_checks)
        self.sync = sync or _no_sync
        self.producers = producers

    def check(self, envelope: Envelope, tenant: str) -> Decision:
        """Every check that can refuse the event (:class:`Rejected`), before anything is sent;
        the envelope is updated to what will be stored."""
        decided = self.decision.decide(envelope.attributes, envelope.data, envelope.content_type,
                                       tenant=tenant)
        envelope.attributes["tenantid"] = tenant
        envelope.attributes["stream"] = decided.stream["stream_name"]
        if decided.reencoded and decided.data is not None:
            envelope.data, envelope.content_type = decided.data, decided.content_type
        return decided

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
            decisions = [self.check(env, tenant) for env in envelopes]
        except Rejected as rejected:
            if rejected.dead_letter_reason != "no_route":
                raise
            # maybe a stream created a moment ago on another replica: catch up once, re-check
            await self.sync()
            decisions = [self.check(env, tenant) for env in envelopes]
        validated = stage_entry(VALIDATOR_ID, "VALIDATION", t0, time.time() * 1000,
                                output={"validation_result": "passed"})
        futures = []
        for env, decided in zip(envelopes, decisions, strict=True):
            futures.append(await self.producers.send(
                decided.topic, env.data, key=env.kafka_key(),
                headers=append_stage(env.kafka_headers(), validated), codec=decided.codec))
        metas = await asyncio.gather(*(acked(f, "stream") for f in futures))
        PUBLISH_LATENCY.labels(path).observe(time.perf_counter() - started)
        results = []
        for env, decided, meta in zip(envelopes, decisions, metas, strict=True):
            stream = decided.stream
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
