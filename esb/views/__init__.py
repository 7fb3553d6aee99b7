"""Faust web views: the public REST API (``/api/v1``), live WebSockets and operational endpoints.

Views are thin: parse, authorize, call ``esb`` logic through ``app.runtime``, render.
"""

from __future__ import annotations

from typing import Any

API_PREFIX = "/api/v1"


def install(app: Any) -> None:
    from esb.views import deadletters, events, jobs, openapi, ops, personal, quotas, streams

    for module in (streams, events, deadletters, openapi, quotas, personal, jobs):
        module.blueprint.register(app, url_prefix=API_PREFIX)
    ops.blueprint.register(app, url_prefix="")


def on_webserver_init(app: Any, web: Any) -> None:
    """Routes and middleware that need aiohttp directly (WebSockets, auth, error bodies)."""
    from esb.views import live
    from esb.views.http import auth_middleware, configure

    if getattr(web, "_esb_initialised", False):  # Faust calls init_server more than once
        return
    web._esb_initialised = True
    limits = configure(app.runtime.settings)
    if app.audit is not None:  # outside auth: sees every final answer (ADR 0017)
        from esb.views.audit import audit_middleware

        web.web_app.middlewares.append(audit_middleware(app.audit))
    web.web_app.middlewares.append(auth_middleware(app.runtime.auth, limits))
    web.web_app.router.add_get("/ws/events/{stream_name}", live.make_handler(app))
    if app.delivery is not None:
        from esb.views import subscriptions_ws

        web.web_app.router.add_get("/ws/subscriptions/{subscription_id}",
                                   subscriptions_ws.make_handler(app))
    if app.monitoring is not None:
        from esb.views import monitoring_ws

        web.web_app.router.add_get("/ws/monitoring", monitoring_ws.make_handler(app))
