"""The spine: the Kafka ingress router, the dead-letter indexer and the core REST views."""

from __future__ import annotations

from typing import Any

from esb.jobs import JobRecovery, default_replica_name


def install(app: Any) -> None:
    import agents.deadletters
    import agents.ingress
    import tables
    from esb import views

    tables.install(app)
    runtime = app.runtime  # jobs whose runner died are resumed or failed (ADR 0016)
    runtime.jobs.replica = default_replica_name(runtime.settings.web_port)
    runtime.add_child(JobRecovery(runtime.jobs, loop=runtime.loop, beacon=runtime.beacon))
    # counted creates serialised across replicas through Redis when configured (ADR 0016)
    runtime.quotas.share_locks(lambda: runtime.redis, f"{runtime.topics.prefix}:")
    if app.runtime.settings.router_enabled:
        app.ingress_router = agents.ingress.install(app.runtime)
    agents.deadletters.install(app)
    views.install(app)
