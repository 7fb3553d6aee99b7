"""The seed's schema registry endpoints (``/api/v1/schemas``), tenant-scoped by the token."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import ValidationError

from esb.errors import InvalidRequest, NotFound
from esb.schemas.models import (
    EnhancedSchemaRegistrationRequest,
    SchemaRegistrationRequest,
    SchemaRegistrationResponse,
    SchemaType,
    SchemaVersion,
)
from esb.schemas.parsing import load_canonical
from esb.schemas.validation import validate_event
from esb.views.http import ascii_int, json_response, principal, read_json, validation_problem

blueprint = Blueprint("schemas")
BODY_LIMIT = 1 << 20


def schema_view(version: SchemaVersion) -> dict[str, Any]:
    """A stored version as the API shows it: the definition under the request's own field name."""
    body = version.model_dump(mode="json", exclude={"schema_text"})
    field = "json_schema" if version.schema_type is SchemaType.JSON else "avro_schema"
    body[field] = load_canonical(version.schema_text)
    return body


def _get(view: View, tenant: str, ref: str) -> SchemaVersion:
    """``sch_N`` names one subject-version; a bare number (ASCII digits) is the Confluent id.
    Other digits ('²', '٣') and out-of-range numbers name nothing: 404, not int()'s 500."""
    state = view.app.schema_registry.state
    number = ascii_int(ref)
    if number is not None:
        return state.get_by_id(tenant, number)
    if ref.isdigit():
        raise NotFound(f"schema {ref!r} not found", id=ref)
    return state.get_by_schema_id(tenant, ref)


async def _register(view: View, request: web.Request,
                    model: type[SchemaRegistrationRequest], message: str) -> web.Response:
    who = principal(request)
    body = await read_json(request, BODY_LIMIT)
    if isinstance(body, dict):
        who.check_tenant(body.pop("tenant_id", None))
    try:
        req = model.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    version, created = await view.app.schema_registry.register_request(req, tenant=who.tenant,
                                                                 user=who.subject)
    answer = SchemaRegistrationResponse(schema_id=version.schema_id, message=message,
                                        subject=version.subject, version=version.version,
                                        id=version.id)
    return json_response(answer.model_dump(mode="json"), status=201 if created else 200)


@blueprint.route("/schemas", name="schemas")
class SchemasView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        q = request.query
        found = self.app.schema_registry.state.list_schemas(
            who.tenant, event_type=q.get("event_type"),
            include_deleted=q.get("include_deleted", "false").lower() == "true",
            active_only=q.get("active_only", "false").lower() == "true")
        return json_response({"schemas": [schema_view(v) for v in found], "total": len(found)})

    async def post(self, request: web.Request) -> web.Response:
        return await _register(self, request, SchemaRegistrationRequest,
                               "Schema registered successfully")


@blueprint.route("/schemas/enhanced", name="schemas-enhanced")
class EnhancedSchemasView(View):
    async def post(self, request: web.Request) -> web.Response:
        return await _register(self, request, EnhancedSchemaRegistrationRequest,
                               "Enhanced schema registered successfully")


@blueprint.route("/schemas/evolution/{event_type}", name="schema-evolution")
class EvolutionView(View):
    async def get(self, request: web.Request, event_type: str) -> web.Response:
        who = principal(request)
        history = self.app.schema_registry.state.evolution_history(who.tenant, event_type)
        return json_response(history.model_dump(mode="json"))


@blueprint.route("/schemas/{schema_id}", name="schema")
class SchemaView(View):
    async def get(self, request: web.Request, schema_id: str) -> web.Response:
        who = principal(request)
        return json_response(schema_view(_get(self, who.tenant, schema_id)))


@blueprint.route("/schemas/{schema_id}/validate", name="schema-validate")
class ValidateView(View):
    async def post(self, request: web.Request, schema_id: str) -> web.Response:
        who = principal(request)
        version = _get(self, who.tenant, schema_id)
        payload = await read_json(request, BODY_LIMIT)
        if payload is None:
            raise InvalidRequest("body must be the event payload to validate")
        return json_response(validate_event(version, payload).model_dump(mode="json"))
