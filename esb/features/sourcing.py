"""Event sourcing (tables, command topic, owner agent), the archive projection and the read-side
API."""

from __future__ import annotations

from typing import Any

from esb.readside.jobs import REBUILD, REPLAY, read_model_work
from esb.sourcing.config import SourcingSettings
from esb.sourcing.feature import SourcingFeature
from esb.sourcing.reducers import shared_registry
from esb.sourcing.replies import PendingReplies
from esb.sourcing.store import AggregateStore


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
    for kind in (REBUILD, REPLAY):  # read-model rebuild and replay as jobs (ADR 0016)
        runtime.jobs.resumable(kind, lambda job: read_model_work(runtime.database, job))
    for module in (sourcing_views, archive, readmodels):
        module.blueprint.register(app, url_prefix=API_PREFIX)
    return feature
