"""The spine: the Kafka ingress router, the dead-letter indexer and the core REST views."""

from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    import agents.deadletters
    import agents.ingress
    import tables
    from esb import views

    tables.install(app)
    if app.runtime.settings.router_enabled:
        app.ingress_router = agents.ingress.install(app.runtime)
    agents.deadletters.install(app)
    views.install(app)
