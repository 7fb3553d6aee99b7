"""Operational endpoints (public): ``/health`` and ``/metrics`` in Prometheus text format."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from esb.metrics import REGISTRY
from esb.views.http import json_response

blueprint = Blueprint("ops")


async def _check(coro: Any, timeout: float = 3.0) -> dict[str, Any]:
    try:
        value = await asyncio.wait_for(coro, timeout)
        return {"ok": True, **(value or {})}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


@blueprint.route("/health", name="health")
class HealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        app = self.app
        runtime = app.runtime

        async def broker() -> dict[str, Any]:
            return {"brokers": await runtime.admin.broker_count()}

        async def database() -> dict[str, Any]:
            async with runtime.database.connection() as conn:
                await conn.execute("SELECT 1")
            return {}

        checks = {"broker": await _check(broker()), "database": await _check(database())}
        router = getattr(app, "ingress_router", None)
        checks["partitions"] = {"ok": True, "ingress_assigned": router.assigned_partitions
                                if router else 0,
                                "agents_assigned": len(app.consumer.assignment())}
        recovered = app.tables.recovery.completed.is_set() if app.tables else True
        checks["tables"] = {"ok": bool(recovered), "recovered": bool(recovered)}
        checks["catalog"] = {"ok": True, "entries": len(runtime.catalog.current.items)}
        healthy = all(c["ok"] for c in checks.values())
        return json_response({"status": "ok" if healthy else "degraded", "checks": checks},
                             status=200 if healthy else 503)


@blueprint.route("/metrics", name="metrics")
class MetricsView(View):
    async def get(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
