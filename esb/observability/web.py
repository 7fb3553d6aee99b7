"""The HTTP server span: one per API request, child of the caller's W3C ``traceparent``.

Called by the web middleware (:mod:`esb.views.http`) around the view; with tracing off it is a
plain await. The view's own work (the publish decision, produce) opens child spans under it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from esb.observability import tracing

__all__ = ["UNTRACED", "traced"]

#: probes that would start a trace every few seconds and say nothing about an event
UNTRACED = frozenset({"/health", "/metrics"})


async def traced(request: Any, handler: Callable[[Any], Awaitable[Any]], route: str,
                 tenant: str | None) -> Any:
    """``await handler(request)`` inside a SERVER span named ``METHOD route``."""
    if not tracing.ENABLED or route in UNTRACED or route.startswith("/ws/"):  # hours-long
        return await handler(request)
    attributes = {"http.request.method": request.method, "http.route": route}
    if tenant is not None:
        attributes["esb.tenant"] = tenant
    with tracing.span(f"{request.method} {route}", parent=tracing.extract(request.headers),
                      kind=tracing.SpanKind.SERVER, attributes=attributes) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        return response
