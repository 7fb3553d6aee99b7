"""Feature entry point: ``install(app)`` wires the schema registry into a worker.

One :class:`SchemaRegistryService` per worker, fed by the metadata catalog (kind ``schema``), the
enforcement check on both publish paths, the seed's REST views and the Confluent-compatible API.
"""

from __future__ import annotations

from typing import Any

from esb.schemas.enforcement import SchemaEnforcer
from esb.schemas.service import KIND, SchemaRegistryService

_ATTRIBUTE = "schema_registry"


def install(app: Any) -> None:
    from esb.views import API_PREFIX, confluent, schemas

    runtime = app.runtime
    service = SchemaRegistryService(runtime.catalog)
    enforcer = SchemaEnforcer(service.state)
    service.add_change_listener(enforcer.invalidate)
    runtime.catalog.current.register(KIND, service.reducer)
    runtime.payload_checks.register(enforcer)
    runtime.payload_checks.register_encoder("AVRO", service.encode_for_avro_stream)
    setattr(app, _ATTRIBUTE, service)
    schemas.blueprint.register(app, url_prefix=API_PREFIX)
    confluent.blueprint.register(app, url_prefix=confluent.PREFIX)


def registry(app: Any) -> SchemaRegistryService:
    """The worker's registry (installed by :func:`install`)."""
    service: SchemaRegistryService = getattr(app, _ATTRIBUTE)
    return service
