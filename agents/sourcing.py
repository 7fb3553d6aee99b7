"""The aggregate owner: the one agent that decides appends for the aggregates of its partitions.

Commands arrive on the co-partitioned command topic, one at a time per worker, so checking the
expected version and storing the result is serial per aggregate (linearizable appends). An
accepted event is stored (tables, changelogged), then published to its stream; the waiting
request is answered once the broker acknowledged the event, so a 201 means it is in the stream.
A duplicate (same event id) re-publishes the stored event: after a crash between storing and
publishing, the client's retry repairs the stream (downstream is idempotent by event id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mode import Service

from esb.errors import EsbError
from esb.kafka import TopicSpec, acked
from esb.observability import sourcing as traced
from esb.sourcing.append import AppendDecision, AppendOutcome
from esb.sourcing.commands import OwnerCommand
from esb.sourcing.outbound import envelope_for, kafka_headers

log = logging.getLogger(__name__)


class CommandTopicService(Service):
    """Creates the command topic before the agents subscribe (same partitions as the tables)."""

    def __init__(self, runtime: Any, topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.topic = topic

    async def on_start(self) -> None:
        s = self.runtime.settings
        await self.runtime.admin.ensure_topics(
            [TopicSpec(self.topic, s.default_partitions, s.internal_replication_factor)])


def install(app: Any, feature: Any) -> Any:
    runtime = app.runtime
    runtime.add_child(CommandTopicService(runtime, feature.tables.commands.get_topic_name(),
                                          loop=runtime.loop, beacon=runtime.beacon))
    store = feature.store
    replies = feature.replies
    inflight: set[asyncio.Task[None]] = set()

    async def answer_after_ack(ack: asyncio.Future[Any], command_id: str, topic: str,
                               decision: AppendDecision, span: Any) -> None:
        try:
            await acked(ack, topic)
        except EsbError as exc:
            traced.end_publish(span, exc)
            replies.fail(command_id, exc)
        else:
            traced.end_publish(span)
            replies.resolve(command_id, decision)

    async def handle_append(command: OwnerCommand, started_ms: float, span: Any) -> None:
        assert command.append is not None and command.delivery is not None
        result = store.append(command.append)
        decision = result.decision
        traced.decided(span, decision.outcome.value, decision.version)
        if decision.outcome is AppendOutcome.CONFLICT or result.event is None:
            replies.resolve(command.command_id, decision)
            return
        delivery = command.delivery
        envelope = envelope_for(result.event, delivery)
        headers = kafka_headers(envelope, started_ms, time.time() * 1000, result.event.version)
        headers, publish = traced.publish_span(headers, delivery.topic, envelope.id,
                                               command.tenant_id)
        try:
            ack = await runtime.producers.send(delivery.topic, envelope.data,
                                               key=envelope.kafka_key(), headers=headers,
                                               codec=delivery.codec)
        except BaseException as exc:
            traced.end_publish(publish, exc)
            raise
        task = asyncio.ensure_future(
            answer_after_ack(ack, command.command_id, delivery.topic, decision, publish))
        inflight.add(task)
        task.add_done_callback(inflight.discard)

    @app.agent(feature.tables.commands, name="esb.sourcing-owner")
    async def decide(stream: Any) -> None:
        async for event in stream.events():
            started_ms = time.time() * 1000
            try:
                command = OwnerCommand.from_dict(event.value)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("dropping malformed sourcing command: %s", exc)
                continue
            try:
                with traced.decide_span(command.trace, command.kind, command.tenant_id) as span:
                    if command.kind == "append":
                        await handle_append(command, started_ms, span)
                    elif command.kind == "snapshot":
                        version = store.take_snapshot(command.tenant_id, command.aggregate_id)
                        replies.resolve(command.command_id, version)
                    else:
                        log.warning("unknown sourcing command kind %r", command.kind)
            except EsbError as exc:  # a client error (e.g. type mismatch) or a broker error
                replies.fail(command.command_id, exc)
            except Exception as exc:  # a bug a command triggers must not stop the owner agent
                log.exception("sourcing command %s failed", command.command_id)
                replies.fail(command.command_id,
                             EsbError(f"append failed ({type(exc).__name__}); it was not stored"))

    return decide
