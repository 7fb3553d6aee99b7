"""Wires event sourcing, the projection agent and the read-side API into the app.

``install(app)`` (listed in ``esb.app.FEATURES``) declares the tables and command topic, the
owner agent, the projection service and the views; ``app.sourcing`` holds what the views need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esb.sourcing.config import SourcingSettings
from esb.sourcing.reducers import shared_registry
from esb.sourcing.replies import PendingReplies
from esb.sourcing.store import AggregateStore


@dataclass
class SourcingFeature:
    tables: Any
    store: AggregateStore
    replies: PendingReplies
    settings: SourcingSettings


def install(app: Any) -> SourcingFeature:
    import agents.projection
    import agents.sourcing
    import tables.sourcing
    from esb.views import API_PREFIX, archive, readmodels
    from esb.views import sourcing as sourcing_views

    settings = SourcingSettings()
    declared = tables.sourcing.declare(app)
    store = AggregateStore(declared.aggregates, declared.events, declared.snapshots,
                           policy=settings.policy(), reducers=shared_registry())
    feature = SourcingFeature(declared, store, PendingReplies(), settings)
    app.sourcing = feature
    runtime = app.runtime
    agents.sourcing.install(app, feature)
    if runtime.settings.projection_enabled:
        app.projection = agents.projection.install(runtime)
    for module in (sourcing_views, archive, readmodels):
        module.blueprint.register(app, url_prefix=API_PREFIX)
    return feature
