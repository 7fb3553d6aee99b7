"""Publishing over HTTP: the publish decision for each event, produce, answer after the ack.

Shared by the HTTP views (single and batch). The Kafka ingress asks the same decision
(:mod:`esb.publish_decision`) through ``esb.routing.IngressRouter``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from esb.authz import Narrowing
from esb.envelope import Envelope
from esb.kafka import ProducerPool, acked_all
from esb.metrics import PUBLISH_LATENCY, PUBLISHED, STREAM_PUBLISH_LATENCY
from esb.observability import context as log_context
from esb.observability import tracing
from esb.publish_decision import Decision, PayloadChecks, PublishDecision, Rejected
from esb.quotas import PublishQuota
from esb.stage_history import stage_appender, stage_entry
from esb.streams import StreamDirectory

VALIDATOR_ID = "proc_validation"


async def _no_sync() -> None:
    return None


class Publisher:
    """The HTTP side of the publish decision: envelopes in, acknowledged records out."""

    def __init__(self, directory: StreamDirectory, producers: ProducerPool, *,
                 max_event_bytes: int, payload_checks: PayloadChecks,
                 sync: Callable[[], Awaitable[None]] | None = None,
                 quota: PublishQuota | None = None) -> None:
        self.decision = PublishDecision(directory, max_event_bytes=max_event_bytes,
                                        payload_checks=payload_checks)
        self.sync = sync or _no_sync
        self.producers = producers
        self.quota = quota

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

    async def publish(self, envelope: Envelope, tenant: str, *, path: str = "http",
                      scope: Narrowing | None = None) -> dict[str, Any]:
        (result,) = await self.publish_many([envelope], tenant, path=path, scope=scope)
        return result

    async def publish_many(self, envelopes: Sequence[Envelope], tenant: str, *,
                           path: str = "http", scope: Narrowing | None = None
                           ) -> list[dict[str, Any]]:
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
        if scope is not None:  # the token's esb_scopes (ADR 0015): every event, or none goes
            for env in envelopes:
                scope.require(stream=env.attributes["stream"],
                              event_type=env.attributes.get("type"))
        for env, decided in zip(envelopes, decisions, strict=True):
            if decided.personal:  # encrypt marked fields before anything is produced
                env.data = await self.decision.seal(decided, env.attributes, tenant)
        if self.quota is not None:  # a valid batch spends the tenant's budget, or nothing goes
            await self.quota.admit(tenant, len(envelopes),
                                   sum(len(env.data or b"") for env in envelopes))
        validated = stage_entry(VALIDATOR_ID, "VALIDATION", t0, time.time() * 1000,
                                output={"validation_result": "passed"})
        if len(envelopes) == 1:  # a batch's lines name the request's tenant only
            a = envelopes[0].attributes
            log_context.bind(event_id=a["id"], stream=a.get("stream"),
                             correlation_id=a.get("correlationid"))
        with_stage = stage_appender(validated)
        futures = []
        spans: list[Any] = []
        try:
            for env, decided in zip(envelopes, decisions, strict=True):
                headers = with_stage(env.kafka_headers())
                if tracing.ENABLED:
                    spans.append(tracing.start_span(
                        "esb.publish", kind=tracing.SpanKind.PRODUCER, attributes={
                            "messaging.destination.name": decided.topic,
                            "esb.event_id": env.id, "esb.tenant": tenant}))
                    headers = tracing.kafka_trace_headers(headers, spans[-1])
                futures.append(await self.producers.send(
                    decided.topic, env.data, key=env.kafka_key(), headers=headers,
                    codec=decided.codec))
            metas = await acked_all(futures, "stream")
        except BaseException as exc:
            tracing.end_all(spans, exc)
            raise
        tracing.end_all(spans)
        elapsed = time.perf_counter() - started
        PUBLISH_LATENCY.labels(path).observe(elapsed)
        for name in {d.stream["stream_name"] for d in decisions}:  # once per request and stream
            STREAM_PUBLISH_LATENCY.labels(tenant, name).observe(elapsed)
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
