"""PostgreSQL and Redis client spans (ADR 0019): with tracing on, a query or command made inside
a span is its child; one made outside any span (a background loop) opens nothing; parameters
never reach a span; with tracing off nothing is instrumented."""

from __future__ import annotations

import psycopg
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from esb.observability import tracing

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]

SECRET = "s3cr3t-payload-value"


async def test_a_query_inside_a_span_is_its_child_and_outside_opens_nothing(
        spans: InMemorySpanExporter, database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("SELECT %s::text", (SECRET,))  # no parent: no span
        assert spans.get_finished_spans() == ()
        with tracing.span("GET /api/v1/database/health") as parent:
            await conn.execute("SELECT %s::text", (SECRET,))
    finished = spans.get_finished_spans()
    assert len(finished) == 2
    query = next(s for s in finished if s.name != "GET /api/v1/database/health")
    assert query.parent is not None and query.parent.span_id == parent.get_span_context().span_id
    assert query.attributes["db.system"] == "postgresql"
    assert SECRET not in str(dict(query.attributes))


async def test_a_redis_command_inside_a_span_is_its_child_with_its_arguments_hidden(
        spans: InMemorySpanExporter, redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.set("esb-test-client-span", SECRET)  # no parent: no span
        assert spans.get_finished_spans() == ()
        with tracing.span("esb.deliver") as parent:
            await client.get("esb-test-client-span")
    finally:
        await client.aclose()
    command = next(s for s in spans.get_finished_spans() if s.name != "esb.deliver")
    assert command.parent is not None
    assert command.parent.span_id == parent.get_span_context().span_id
    assert command.attributes["db.system"] == "redis"
    assert SECRET not in str(dict(command.attributes))


async def test_with_tracing_off_clients_are_not_instrumented(database_url: str) -> None:
    assert tracing.configure(service_instance="t", environ={}) is False
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    assert not PsycopgInstrumentor().is_instrumented_by_opentelemetry
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
