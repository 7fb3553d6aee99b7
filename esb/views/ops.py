"""Operational endpoints (public): ``/health`` and ``/metrics`` in Prometheus text format.

``/health`` tells anyone only ``{"status": "ok"|"degraded"}`` (200/503): the detailed checks name
brokers, partitions and error texts, so they go only to an authenticated operator or admin.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from esb.auth import Principal
from esb.errors import AuthenticationError, redact
from esb.metrics import REGISTRY
from esb.views.http import json_response

blueprint = Blueprint("ops")


async def _check(coro: Any, timeout: float = 3.0) -> dict[str, Any]:
    try:
        value = await asyncio.wait_for(coro, timeout)
        return {"ok": True, **(value or {})}
    except Exception as exc:
        return {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")[:300]}


def _caller(app: Any, request: web.Request) -> Principal | None:
    """The authenticated caller, if any: /health is public, so a bad token is no error here."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    try:
        return app.runtime.auth.authenticate(header)  # type: ignore[no-any-return]
    except AuthenticationError:
        return None


async def _consumers(runtime: Any) -> dict[str, Any]:
    """Kafka consumer loops backing off on an infrastructure failure (``runtime.consumer_health``,
    sync or async); a loop that is stuck makes the bus degraded."""
    report = runtime.consumer_health()
    if inspect.isawaitable(report):
        report = await report
    report = dict(report or {})
    return {**report, "ok": bool(report.get("ok", True))}


async def health_checks(app: Any) -> dict[str, dict[str, Any]]:
    """Every check, each ``{"ok": bool, ...}``."""
    runtime = app.runtime

    async def broker() -> dict[str, Any]:
        return {"brokers": await runtime.admin.broker_count()}

    async def database() -> dict[str, Any]:
        async with runtime.database.connection() as conn:
            await conn.execute("SELECT 1")
        return {}

    checks = {"broker": await _check(broker()), "database": await _check(database())}
    router = app.ingress_router
    checks["partitions"] = {"ok": True, "ingress_assigned": router.assigned_partitions
                            if router else 0,
                            "agents_assigned": len(app.consumer.assignment())}
    recovered = app.tables.recovery.completed.is_set() if app.tables else True
    checks["tables"] = {"ok": bool(recovered), "recovered": bool(recovered)}
    checks["catalog"] = {"ok": True, "entries": len(runtime.catalog.current.items)}
    if callable(getattr(runtime, "consumer_health", None)):
        checks["consumers"] = await _check(_consumers(runtime))
    return checks


@blueprint.route("/health", name="health")
class HealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        checks = await health_checks(self.app)
        healthy = all(c["ok"] for c in checks.values())
        body: dict[str, Any] = {"status": "ok" if healthy else "degraded"}
        storage = self.app.runtime.settings.broker_storage
        if storage:  # "durable (s3 on <dir>)" or "memory — nothing survives a restart"
            # the data directory is for operators only; anyone may know the mode
            body["storage"] = storage.split(" on ", 1)[0] + ")" if " on " in storage else storage
        who = _caller(self.app, request)
        if who is not None and who.sees_operations:
            body["checks"] = checks
            if storage:
                body["storage"] = storage
        return json_response(body, status=200 if healthy else 503)


@blueprint.route("/metrics", name="metrics")
class MetricsView(View):
    async def get(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
