"""The schema registry: one service per worker fed by the metadata catalog (kind ``schema``),
enforcement on both publish paths, the seed's REST views and the Confluent-compatible API."""

from __future__ import annotations

from typing import Any

from esb.schemas.enforcement import SchemaEnforcer
from esb.schemas.service import KIND, SchemaRegistryService


def install(app: Any) -> SchemaRegistryService:
    from esb.views import API_PREFIX, confluent, schemas

    runtime = app.runtime
    service = SchemaRegistryService(runtime.catalog, quotas=runtime.quotas)
    enforcer = SchemaEnforcer(service.state)
    service.add_change_listener(enforcer.invalidate)
    runtime.catalog.current.register(KIND, service.reducer)
    runtime.payload_checks.register(enforcer)
    runtime.payload_checks.register_encoder("AVRO", service.encode_for_avro_stream)
    app.schema_registry = service
    schemas.blueprint.register(app, url_prefix=API_PREFIX)
    confluent.blueprint.register(app, url_prefix=confluent.PREFIX)
    return service
