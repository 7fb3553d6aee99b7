"""The seeds' status endpoints (seed 000 "Health Checks"): ``GET /api/v1/status``,
``/api/v1/kafka/health``, ``/api/v1/database/health``, ``/api/v1/metrics`` and
``/api/v1/streams/{id}/metrics``. Authenticated, unlike the cheap public ``/health``: each answers
the caller's tenant only (its streams, its series); infrastructure detail (hosts, pool, errors)
goes to operators and admins, as on ``/health``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import psutil
from aiohttp import web
from faust.web import Blueprint, View
from prometheus_client import CONTENT_TYPE_LATEST

from esb.errors import NotFound
from esb.metrics import exposition
from esb.monitoring.snapshot import read_totals
from esb.views.http import json_response, principal
from esb.views.ops import _consumers, health_checks

blueprint = Blueprint("status")
_STARTED = psutil.Process().create_time()


def _word(ok: bool) -> str:
    return "healthy" if ok else "unhealthy"


@blueprint.route("/status", name="status")
class StatusView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        checks = await health_checks(self.app)
        healthy = all(c["ok"] for c in checks.values())
        runtime = self.app.runtime
        delivery = self.app.delivery
        body: dict[str, Any] = {
            "status": _word(healthy),
            "service": "event-streaming-bus",
            "timestamp": datetime.now(UTC).isoformat(),
            "uptime_seconds": round(time.time() - _STARTED, 1),
            "components": {name: _word(c["ok"]) for name, c in checks.items()},
            "tenant": {
                "tenant_id": who.tenant,
                "streams": len(runtime.streams.directory.list(who.tenant)),
                "subscriptions": len(delivery.subscriptions.list(who.tenant))
                if delivery is not None else 0,
                "websockets_open": runtime.ws_slots.open.get(who.tenant, 0),
            },
        }
        if who.sees_operations:
            body["checks"] = checks
        return json_response(body)


@blueprint.route("/kafka/health", name="kafka_health")
class KafkaHealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        runtime = self.app.runtime
        started = time.perf_counter()
        try:
            brokers = await asyncio.wait_for(runtime.admin.broker_count(), 3.0)
            error = None
        except Exception as exc:
            brokers, error = 0, f"{type(exc).__name__}"
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        consumers = await _consumers(runtime)  # sync or async, as /health reads it
        ok = error is None and consumers["ok"]
        body: dict[str, Any] = {"status": _word(ok), "brokers": brokers,
                                "response_time_ms": elapsed,
                                "consumers_ok": consumers["ok"]}
        if who.sees_operations:
            body["bootstrap_servers"] = runtime.settings.bootstrap_servers
            body["consumers"] = consumers
            if error is not None:
                body["error"] = error
        return json_response(body, status=200 if ok else 503)


@blueprint.route("/database/health", name="database_health")
class DatabaseHealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        database = self.app.runtime.database
        started = time.perf_counter()
        error = None
        try:
            async with asyncio.timeout(3.0):
                async with database.connection() as conn:
                    await conn.execute("SELECT 1")
        except Exception as exc:
            error = type(exc).__name__
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        body: dict[str, Any] = {"status": _word(error is None), "database": "postgresql",
                                "response_time_ms": elapsed}
        if who.sees_operations:
            body["pool"] = {k: v for k, v in database.pool.get_stats().items()
                            if k.startswith("pool_") or k.startswith("requests_")}
            if error is not None:
                body["error"] = error
        return json_response(body, status=200 if error is None else 503)


@blueprint.route("/metrics", name="tenant_metrics")
class TenantMetricsView(View):
    """Prometheus text: the caller's tenant's series and the worker's own (process, HTTP);
    operators (the cross-tenant role) see every tenant's, like the public ``/metrics``
    scrape; a tenant's admin sees its own tenant only."""

    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = exposition(None if who.is_operator else who.tenant)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@blueprint.route("/streams/{stream_id}/metrics", name="stream_metrics")
class StreamMetricsView(View):
    async def get(self, request: web.Request, stream_id: str) -> web.Response:
        who = principal(request)
        stream = self.app.runtime.streams.directory.get(who.tenant, stream_id)
        if stream is None:
            raise NotFound(f"stream {stream_id!r} not found", stream_id=stream_id)
        name = stream["stream_name"]
        lanes: dict[str, str] = dict(stream["topics"])  # priority -> topic
        ends = await self.app.monitoring.offsets.end_offsets(list(lanes.values()))
        by_priority = {priority: sum(v for k, v in ends.items() if k.rsplit(":", 1)[0] == topic)
                       for priority, topic in lanes.items()}
        totals = read_totals(who.tenant, [name])[name]
        latency = (1000 * totals.latency_sum / totals.latency_count
                   if totals.latency_count else 0.0)
        return json_response({
            "stream_id": stream["stream_id"],
            "stream_name": name,
            "total_events": sum(by_priority.values()),
            "events_by_priority": by_priority,
            "replica": {"events_accepted": int(totals.events), "errors": int(totals.errors),
                        "avg_publish_latency_ms": round(latency, 3)},
            "consumer_lag": {"total": int(totals.lag_records),
                             "max_seconds": round(totals.lag_seconds, 3),
                             "by_group": {g: int(v) for g, v in totals.lag_by_group.items()}},
            "measured_at": datetime.now(UTC).isoformat(),
        })
