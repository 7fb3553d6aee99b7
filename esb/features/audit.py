"""The audit trail (ADR 0017): the recording service as a runtime child (it signs checkpoints
at intervals), its views, and the middleware ``esb.views.on_webserver_init`` adds."""

from __future__ import annotations

from typing import Any

from esb.audit.service import AuditService


def install(app: Any) -> AuditService:
    from esb.views import API_PREFIX, audit

    runtime = app.runtime
    service = AuditService(runtime.settings, lambda: runtime.database, loop=runtime.loop,
                           beacon=runtime.beacon)
    runtime.add_child(service)
    app.audit = service
    audit.blueprint.register(app, url_prefix=API_PREFIX)
    return service
