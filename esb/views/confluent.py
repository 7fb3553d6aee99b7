"""Confluent Schema Registry compatible API, mounted under ``/schema-registry``.

What ``confluent-kafka``'s ``SchemaRegistryClient`` (and so its Avro/JSON serializers) calls:
subjects, versions (``latest`` too), schemas by id, lookup, compatibility checks, config per
subject and global, deletes, plus the read-only mode/types/contexts probes. The tenant is the
bearer token's; ``target-sr-cluster`` (``bearer.auth.logical.cluster``) is accepted and ignored.
Answers and errors use ``application/vnd.schemaregistry.v1+json`` and Confluent's error codes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb.errors import EsbError
from esb.schemas import confluent as cf
from esb.schemas.service import SchemaRegistryService
from esb.views.http import ascii_int, principal, read_json, redact_problem

PREFIX = "/schema-registry"
BODY_LIMIT = 1 << 20

blueprint = Blueprint("confluent")

Handler = Callable[..., Awaitable[Any]]


def _answer(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, content_type=cf.CONTENT_TYPE)


def confluent_api(handler: Handler) -> Handler:
    """Render the handler's result, and any bus error, the way Confluent clients expect."""

    @functools.wraps(handler)
    async def wrapper(self: View, request: web.Request, **params: Any) -> web.Response:
        try:
            return _answer(await handler(self, request, **params))
        except EsbError as exc:
            status, body = cf.error_answer(exc)
            if exc.hides_message:  # never a driver's text (hosts, SQL) to a client
                body["message"] = redact_problem(exc, request)
            return _answer(body, status)

    return wrapper


def _ctx(view: View, request: web.Request) -> tuple[SchemaRegistryService, str]:
    return view.app.schema_registry, principal(request).tenant


@blueprint.route("/subjects", name="cf-subjects")
class Subjects(View):
    @confluent_api
    async def get(self, request: web.Request) -> Any:
        service, tenant = _ctx(self, request)
        subjects = service.state.list_subjects(tenant, cf.flag(request.query, "deleted"))
        prefix = request.query.get("subjectPrefix", "")
        return [s for s in subjects if s.startswith(prefix)]


@blueprint.route("/subjects/{subject}", name="cf-subject")
class Subject(View):
    @confluent_api
    async def post(self, request: web.Request, subject: str) -> Any:
        """Lookup: is this schema registered under the subject?"""
        service, tenant = _ctx(self, request)
        schema_type, text = cf.parse_schema_body(await read_json(request, BODY_LIMIT))
        found = service.state.lookup(tenant, subject, schema_type, text,
                                     include_deleted=cf.flag(request.query, "deleted"))
        return cf.version_body(found)

    @confluent_api
    async def delete(self, request: web.Request, subject: str) -> Any:
        service, tenant = _ctx(self, request)
        return await service.delete(tenant, subject, None, cf.flag(request.query, "permanent"))


@blueprint.route("/subjects/{subject}/versions", name="cf-versions")
class Versions(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str) -> Any:
        service, tenant = _ctx(self, request)
        return service.state.list_versions(tenant, subject, cf.flag(request.query, "deleted"))

    @confluent_api
    async def post(self, request: web.Request, subject: str) -> Any:
        service, tenant = _ctx(self, request)
        who = principal(request)
        record = cf.registration_record(tenant, subject, await read_json(request, BODY_LIMIT),
                                        who.subject)
        version = await service.register(record)
        return {"id": version.id, "subject": version.subject, "version": version.version}


@blueprint.route("/subjects/{subject}/versions/{version}", name="cf-version")
class Version(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str, version: str) -> Any:
        service, tenant = _ctx(self, request)
        found = service.state.get_version(tenant, subject, cf.parse_version(version),
                                          include_deleted=cf.flag(request.query, "deleted"))
        return cf.version_body(found)

    @confluent_api
    async def delete(self, request: web.Request, subject: str, version: str) -> Any:
        service, tenant = _ctx(self, request)
        ref = cf.parse_version(version)
        permanent = cf.flag(request.query, "permanent")
        number = service.state.get_version(tenant, subject, ref, include_deleted=permanent).version
        (deleted,) = await service.delete(tenant, subject, number, permanent)
        return deleted


@blueprint.route("/subjects/{subject}/versions/{version}/schema", name="cf-version-schema")
class VersionSchema(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str, version: str) -> Any:
        service, tenant = _ctx(self, request)
        found = service.state.get_version(tenant, subject, cf.parse_version(version))
        return cf.schema_body(found)["schema"]


@blueprint.route("/subjects/{subject}/versions/{version}/referencedby", name="cf-referencedby")
class ReferencedBy(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str, version: str) -> Any:
        service, tenant = _ctx(self, request)
        service.state.get_version(tenant, subject, cf.parse_version(version))
        return []  # references are not supported, so nothing refers to a version


@blueprint.route("/schemas/types", name="cf-types")
class SchemaTypes(View):
    @confluent_api
    async def get(self, request: web.Request) -> Any:
        return list(cf.SUPPORTED_TYPES)


@blueprint.route("/schemas/ids/{schema_id}", name="cf-schema-id")
class SchemaById(View):
    @confluent_api
    async def get(self, request: web.Request, schema_id: str) -> Any:
        service, tenant = _ctx(self, request)
        return cf.schema_body(service.state.get_by_id(tenant, _id(schema_id)))


@blueprint.route("/schemas/ids/{schema_id}/schema", name="cf-schema-id-raw")
class RawSchemaById(View):
    @confluent_api
    async def get(self, request: web.Request, schema_id: str) -> Any:
        service, tenant = _ctx(self, request)
        return cf.schema_body(service.state.get_by_id(tenant, _id(schema_id)))["schema"]


@blueprint.route("/schemas/ids/{schema_id}/versions", name="cf-schema-id-versions")
class SchemaIdVersions(View):
    @confluent_api
    async def get(self, request: web.Request, schema_id: str) -> Any:
        service, tenant = _ctx(self, request)
        return [{"subject": s, "version": v}
                for s, v in service.state.versions_for_id(tenant, _id(schema_id))]


@blueprint.route("/schemas/ids/{schema_id}/subjects", name="cf-schema-id-subjects")
class SchemaIdSubjects(View):
    @confluent_api
    async def get(self, request: web.Request, schema_id: str) -> Any:
        service, tenant = _ctx(self, request)
        return sorted({s for s, _ in service.state.versions_for_id(tenant, _id(schema_id))})


def _id(raw: str) -> int:
    """A Confluent schema id: ASCII digits only ('²'.isdigit() is True but int() refuses it)."""
    number = ascii_int(raw)
    if number is None:
        raise cf.ConfluentError(404, 40403, f"Schema {raw} not found")
    return number


async def _compatibility(view: View, request: web.Request, subject: str,
                         version: str | None) -> Any:
    service, tenant = _ctx(view, request)
    schema_type, text = cf.parse_schema_body(await read_json(request, BODY_LIMIT))
    ref = cf.parse_version(version) if version is not None else None
    result = service.state.test_compatibility(tenant, subject, schema_type, text, version=ref)
    return cf.compatibility_body(result, cf.flag(request.query, "verbose"))


@blueprint.route("/compatibility/subjects/{subject}/versions", name="cf-compat-all")
class CompatibilityAll(View):
    @confluent_api
    async def post(self, request: web.Request, subject: str) -> Any:
        return await _compatibility(self, request, subject, None)


@blueprint.route("/compatibility/subjects/{subject}/versions/{version}", name="cf-compat")
class Compatibility(View):
    @confluent_api
    async def post(self, request: web.Request, subject: str, version: str) -> Any:
        return await _compatibility(self, request, subject, version)


async def _config_get(view: View, request: web.Request, subject: str | None) -> Any:
    service, tenant = _ctx(view, request)
    level = service.state.configured_level(tenant, subject)
    if level is None:
        if subject is not None and not cf.flag(request.query, "defaultToGlobal"):
            raise cf.ConfluentError(404, 40408, f"Subject '{subject}' does not have "
                                                "subject-level compatibility configured")
        level = service.state.compatibility_level(tenant, None)
    return {"compatibilityLevel": str(level)}


async def _config_put(view: View, request: web.Request, subject: str | None) -> Any:
    service, tenant = _ctx(view, request)
    level = cf.parse_level(await read_json(request, BODY_LIMIT))
    await service.set_level(tenant, subject, level)
    return {"compatibility": str(level)}


async def _config_delete(view: View, request: web.Request, subject: str | None) -> Any:
    service, tenant = _ctx(view, request)
    previous = service.state.compatibility_level(tenant, subject)
    await service.set_level(tenant, subject, None)
    return {"compatibilityLevel": str(previous)}


@blueprint.route("/config", name="cf-config")
class GlobalConfig(View):
    @confluent_api
    async def get(self, request: web.Request) -> Any:
        return await _config_get(self, request, None)

    @confluent_api
    async def put(self, request: web.Request) -> Any:
        return await _config_put(self, request, None)

    @confluent_api
    async def delete(self, request: web.Request) -> Any:
        return await _config_delete(self, request, None)


@blueprint.route("/config/{subject}", name="cf-subject-config")
class SubjectConfig(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str) -> Any:
        return await _config_get(self, request, subject)

    @confluent_api
    async def put(self, request: web.Request, subject: str) -> Any:
        return await _config_put(self, request, subject)

    @confluent_api
    async def delete(self, request: web.Request, subject: str) -> Any:
        return await _config_delete(self, request, subject)


@blueprint.route("/mode", name="cf-mode")
class GlobalMode(View):
    @confluent_api
    async def get(self, request: web.Request) -> Any:
        return {"mode": "READWRITE"}


@blueprint.route("/mode/{subject}", name="cf-subject-mode")
class SubjectMode(View):
    @confluent_api
    async def get(self, request: web.Request, subject: str) -> Any:
        return {"mode": "READWRITE"}


@blueprint.route("/contexts", name="cf-contexts")
class Contexts(View):
    @confluent_api
    async def get(self, request: web.Request) -> Any:
        return ["."]
