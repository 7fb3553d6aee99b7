"""The route table: every HTTP route the bus serves, declared once, as data.

Views register routes with Faust blueprints; this module says what each route *is*: method, path
template, operation id, request and response bodies (pydantic models or JSON Schemas), parameters,
whether it is public, and which path parameters hold tenant-scoped ids. The OpenAPI document
(:func:`openapi_document`), the route-completeness test and the tenant-isolation suite are all
generated from :data:`ROUTES`, so a route added without a row fails the tests, and a row added
without an isolation case fails too. The ``needs`` column says which permission (granted by
the token's roles, :mod:`esb.authz`) each route requires; the middleware enforces it.

Plain logic: imports models, never views or agents (a few request models still live in view
modules; their documentation twins below are checked against them by the unit tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from esb.anumate import AnumatePublishIn
from esb.authz import Permission
from esb.delivery.models import (
    ConsumerGroupCreate,
    ConsumerLagResponse,
    SubscriptionCreate,
    SubscriptionStatusResponse,
)
from esb.envelope import EventIn
from esb.processing.models import StreamProcessorDefinition
from esb.processing.service import PatternOptions
from esb.quotas import QuotaDocument, QuotaUpdate
from esb.readside.archive import MAX_PAGE, EventQuery
from esb.readside.history import ProcessingHistoryResponse
from esb.readside.readmodels import DocumentPage, ReadModelDefinition, ReadModelDocument
from esb.schemas.models import (
    EnhancedSchemaRegistrationRequest,
    EvolutionHistory,
    SchemaRegistrationRequest,
    SchemaRegistrationResponse,
    ValidationResult,
)
from esb.sourcing.models import AppendRequest, AppendResponse, ReconstructRequest
from esb.sourcing.models import ReconstructResponse as _ReconstructResponse
from esb.streams import StreamCreate
from esb.topics import Priority

API_PREFIX = "/api/v1"  # the same value as esb.views.API_PREFIX (views are not imported here)
SCHEMA_REGISTRY_PREFIX = "/schema-registry"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
CONFLUENT_JSON = "application/vnd.schemaregistry.v1+json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

#: Statuses every authenticated JSON route may answer with, described once in the document.
ERROR_STATUSES: tuple[int, ...] = (400, 401, 403, 404, 409, 413, 422, 429)

#: A JSON Schema written by hand where no pydantic model exists (yet).
JsonSchema = Mapping[str, Any]
LOOSE: JsonSchema = {"type": "object"}


class Resource(StrEnum):
    """Kinds of tenant-scoped id that appear in paths (what the isolation suite creates)."""

    STREAM = "stream"
    EVENT = "event"
    DEAD_LETTER = "dead_letter"
    SCHEMA = "schema"
    EVENT_TYPE = "event_type"
    AGGREGATE = "aggregate"
    READ_MODEL = "read_model"
    DOCUMENT = "document"
    SUBSCRIPTION = "subscription"
    CONSUMER_GROUP = "consumer_group"
    PROCESSOR = "processor"
    PATTERN = "pattern"
    SUBJECT = "subject"
    SCHEMA_VERSION = "schema_version"
    AUDIT_ENTRY = "audit_entry"
    DATA_SUBJECT = "data_subject"  # whose personal fields are keyed together (ADR 0018)
    JOB = "job"  # a long operation's status (ADR 0016)


@dataclass(frozen=True, slots=True)
class Typed:
    """A body that is not a BaseModel (a union, a list): a component name and its type."""

    name: str
    annotation: Any


#: A request or response body: a pydantic model, a named type, or a hand-written JSON Schema.
Body = type[BaseModel] | Typed | JsonSchema


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter (path parameters are read from the template)."""

    name: str
    schema: JsonSchema = field(default_factory=lambda: {"type": "string"})
    location: Literal["query", "header"] = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the table: one method on one path."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    request: tuple[tuple[str, Body], ...] = ()  # (content type, body) alternatives
    request_required: bool = True
    response: Body | None = None
    status: int = 200
    response_type: str = JSON
    params: tuple[Param, ...] = ()
    public: bool = False
    scoped: tuple[tuple[str, Resource], ...] = ()  # (path parameter, kind of tenant-scoped id)
    websocket: bool = False
    errors: Literal["problem", "confluent"] = "problem"
    #: The permission a caller's roles must grant (esb.authz, ADR 0015); required on every row,
    #: enforced once by the HTTP middleware, checked row by row by the role-matrix test.
    needs: Permission = field(kw_only=True)

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{([^}:]+)", self.path))

    @property
    def is_list(self) -> bool:
        """A GET without path ids answers a collection (filtered by the caller's tenant)."""
        return self.method == "GET" and not self.path_params and not self.public

    @property
    def changes_state(self) -> bool:
        """Recorded in the audit trail (ADR 0017): a write that needs more than read or publish
        (publishing events and queries are data, not a change of the bus's configuration)."""
        return (self.method not in ("GET", "HEAD", "OPTIONS")
                and self.needs not in (Permission.PUBLIC, Permission.READ, Permission.PUBLISH))


# ------------------------------------------------------------------ documentation-only models
# Twins of request models that still live in view modules (the table must not import views);
# tests/unit/spine/test_api_spec.py fails if a twin drifts from the view's model.


class SourcingAppendRequest(AppendRequest):
    """``POST /event-sourcing/append``: the seed's body plus where to publish."""

    stream_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    priority: Priority = Priority.NORMAL
    source: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class SourcingReconstructRequest(ReconstructRequest):
    use_snapshots: bool = True


class ReplayRequest(BaseModel):
    """``POST /read-models/{name}/replay``: exactly one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate_id: str | None = None
    stream_id: str | None = None


class ReconstructResponse(_ReconstructResponse):
    latest_version: int
    reconstruct_ms: float


class EventBatchIn(BaseModel):
    """``POST /events/batch`` seed body (a bare JSON list of events is accepted too)."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class PatternCreate(PatternOptions):
    """``POST /patterns``: the runtime options plus one pattern's fields, flat (``kind``
    selects which: sequence, threshold, absence, anomaly; see ``PatternDefinition``)."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["sequence", "threshold", "absence", "anomaly"]


class DeadLetterRedriveFilter(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: str | None = None
    stage: str | None = None
    event_type: str | None = None
    stream: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(1000, ge=1, le=10_000)
    unattributed: bool = False


class SubscriptionReplay(BaseModel):
    """Exactly one of ``from_time`` (RFC 3339) or ``from_offset`` (n, or {partition: n})."""

    from_time: AwareDatetime | None = None
    from_offset: Annotated[int, Field(ge=0)] | dict[str, Annotated[int, Field(ge=0)]] | None = None


CLOUDEVENT: JsonSchema = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {"specversion": {"const": "1.0"}, "id": {"type": "string", "minLength": 1},
                   "source": {"type": "string", "minLength": 1},
                   "type": {"type": "string", "minLength": 1}, "data": {}},
}
CONFLUENT_SCHEMA: JsonSchema = {
    "type": "object", "required": ["schema"],
    "properties": {"schema": {"type": "string"},
                   "schemaType": {"type": "string", "enum": ["AVRO", "JSON"]},
                   "references": {"type": "array", "maxItems": 0}},
}
CONFLUENT_LEVEL: JsonSchema = {
    "type": "object", "required": ["compatibility"],
    "properties": {"compatibility": {"type": "string", "enum": [
        "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
        "FULL_TRANSITIVE"]}},
}
PROBLEM: JsonSchema = {
    "type": "object", "required": ["type", "title", "status", "code", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "code": {"type": "string"},
                   "detail": {"type": "string"}, "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {
                       "type": "object", "properties": {"path": {"type": "string"},
                                                        "message": {"type": "string"}}}}},
}
CONFLUENT_ERROR: JsonSchema = {
    "type": "object", "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
}


def _flag(name: str, description: str = "") -> Param:
    return Param(name, {"type": "string", "enum": ["true", "false"]}, description=description)


def _int(name: str, minimum: int = 0, maximum: int | None = None, description: str = "") -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return Param(name, schema, description=description)


TIME = {"type": "string", "format": "date-time"}
LIMIT_PAGE = _int("limit", 1, MAX_PAGE)
DLQ_FILTERS = (
    Param("reason"), Param("stage"), Param("event_type"), Param("stream"),
    Param("status", {"type": "string", "enum": ["DEAD", "REDRIVEN", "ALL"]}),
    Param("since", TIME), Param("until", TIME), _int("limit", 1, 10_000), Param("before"),
    _flag("unattributed", "operators only: records that named no tenant"))
UNATTRIBUTED = (_flag("unattributed", "operators only: records that named no tenant"),)
#: long operations that can run as a job (ADR 0016)
_RESPOND_ASYNC = Param("Prefer", location="header",
                       description="respond-async: answer 202 with a job (GET /jobs/{id})")
ERASURE: JsonSchema = {"type": "object", "required": ["subject_id", "erased_keys", "erased_at"],
                       "properties": {"subject_id": {"type": "string"},
                                      "erased_keys": {"type": "integer", "minimum": 0},
                                      "erased_at": TIME}}


def _json(body: Body) -> tuple[tuple[str, Body], ...]:
    return ((JSON, body),)


def _cf(body: Body) -> tuple[tuple[str, Body], ...]:
    return ((CONFLUENT_JSON, body), (JSON, body))


S, E, DL = Resource.STREAM, Resource.EVENT, Resource.DEAD_LETTER
P = Permission  # the ``needs`` column: public, read, publish, subscribe, operate, admin
A = API_PREFIX
R = SCHEMA_REGISTRY_PREFIX


def _api(method: str, path: str, operation_id: str, summary: str, tag: str, **kw: Any) -> Route:
    return Route(method, A + path, operation_id, summary, tag, **kw)


def _reg(method: str, path: str, operation_id: str, summary: str, *, needs: Permission,
         body: Body | None = None, response: Body | None = None, params: tuple[Param, ...] = (),
         scoped: tuple[tuple[str, Resource], ...] = ()) -> Route:
    return Route(method, R + path, operation_id, summary, "schema-registry (Confluent)",
                 request=_cf(body) if body is not None else (), response=response or LOOSE,
                 response_type=CONFLUENT_JSON, params=params, scoped=scoped, errors="confluent",
                 needs=needs)


SUBJ = (("subject", Resource.SUBJECT),)
SUBJ_VER = (("subject", Resource.SUBJECT), ("version", Resource.SCHEMA_VERSION))
CF_ID = (("schema_id", Resource.SCHEMA),)
LIST_OF_STRINGS: JsonSchema = {"type": "array", "items": {"type": "string"}}

ROUTES: tuple[Route, ...] = (
    # ---------------------------------------------------------------- operations (public)
    Route("GET", "/health", "health", "Broker, database, partitions and tables", "operations",
          response=LOOSE, public=True, needs=P.PUBLIC),
    Route("GET", "/metrics", "metrics", "Prometheus metrics", "operations",
          response={"type": "string"}, response_type=PROMETHEUS_TEXT, public=True, needs=P.PUBLIC),
    Route("GET", OPENAPI_PATH, "openapi", "This document", "operations", response=LOOSE,
          public=True, needs=P.PUBLIC),
    # seed 000 "Health Checks" (ADR 0020): the caller's tenant only; details for operators
    _api("GET", "/status", "get_status", "Component health and the tenant's counts",
         "operations", response=LOOSE, needs=P.READ),
    _api("GET", "/kafka/health", "get_kafka_health", "Broker reachability (503 when down)",
         "operations", response=LOOSE, needs=P.READ),
    _api("GET", "/database/health", "get_database_health",
         "PostgreSQL reachability (503 when down)", "operations", response=LOOSE, needs=P.READ),
    _api("GET", "/metrics", "get_tenant_metrics",
         "Prometheus text: the tenant's series and the worker's own", "operations",
         response={"type": "string"}, response_type=PROMETHEUS_TEXT, needs=P.READ),
    # ---------------------------------------------------------------- streams
    _api("GET", "/streams", "list_streams", "The tenant's streams", "streams", response=LOOSE,
         needs=P.READ),
    _api("POST", "/streams", "create_stream", "Create a stream (one topic per priority lane)",
         "streams", request=_json(StreamCreate), response=LOOSE, status=201, needs=P.ADMIN),
    _api("GET", "/streams/{stream_id}", "get_stream", "A stream by id or name", "streams",
         response=LOOSE, scoped=(("stream_id", S),), needs=P.READ),
    _api("GET", "/streams/{stream_id}/events", "list_stream_events",
         "A stream's archived events (keyset paging)", "read side", response=LOOSE,
         params=(LIMIT_PAGE, Param("cursor"),
                 Param("order", {"type": "string", "enum": ["asc", "desc"]}),
                 Param("start_time", TIME), Param("end_time", TIME)),
         scoped=(("stream_id", S),), needs=P.READ),
    _api("GET", "/streams/{stream_id}/metrics", "get_stream_metrics",
         "Events per priority, this replica's publish figures, consumer lag", "streams",
         response=LOOSE, scoped=(("stream_id", S),), needs=P.READ),
    # ---------------------------------------------------------------- publishing
    _api("POST", "/events", "publish_event", "Publish one event (seed JSON or CloudEvents)",
         "publishing", request=((JSON, EventIn), (CE_JSON, CLOUDEVENT)), response=LOOSE,
         status=201, params=(Param("Idempotency-Key", location="header"),), needs=P.PUBLISH),
    _api("POST", "/events/batch", "publish_batch", "Publish a batch, all-or-nothing",
         "publishing", request=((JSON, EventBatchIn),
                                (CE_BATCH, {"type": "array", "items": CLOUDEVENT, "minItems": 1})),
         response=LOOSE, status=201, params=(Param("Idempotency-Key", location="header"),),
         needs=P.PUBLISH),
    # seed 003 (Anumate) paths, without the /api/v1 prefix as the seed has them (esb.anumate)
    Route("POST", "/events/publish", "anumate_publish_event",
          "Publish seed 003's {event_type, data, tenant_id} to the ANUMATE_EVENTS stream",
          "publishing", request=_json(AnumatePublishIn), response=LOOSE, status=201,
          params=(Param("source", description="the CloudEvents source (default: anumate)"),),
          needs=P.PUBLISH),
    Route("GET", "/events/health", "anumate_health", "Seed 003's health document",
          "operations", response=LOOSE, needs=P.READ),
    # ---------------------------------------------------------------- read side
    _api("POST", "/events/query", "query_events", "Query the archive", "read side",
         request=_json(EventQuery), response=LOOSE, needs=P.READ),
    _api("GET", "/events/{event_id}", "get_event", "One archived event", "read side",
         response=LOOSE, scoped=(("event_id", E),), needs=P.READ),
    _api("GET", "/events/{event_id}/processing-history", "get_processing_history",
         "What happened to an event, stage by stage", "read side",
         response=ProcessingHistoryResponse, scoped=(("event_id", E),), needs=P.READ),
    _api("GET", "/read-models", "list_read_models", "Read model definitions", "read side",
         response=LOOSE, needs=P.READ),
    _api("POST", "/read-models", "create_read_model", "Define a read model and build it",
         "read side", request=_json(ReadModelDefinition), response=LOOSE, status=201,
         needs=P.ADMIN),
    _api("GET", "/read-models/{name}", "get_read_model", "A read model definition", "read side",
         response=ReadModelDefinition, scoped=(("name", Resource.READ_MODEL),), needs=P.READ),
    _api("DELETE", "/read-models/{name}", "delete_read_model", "Drop a read model", "read side",
         status=204, scoped=(("name", Resource.READ_MODEL),), needs=P.ADMIN),
    _api("GET", "/read-models/{name}/documents", "list_read_model_documents",
         "A read model's documents", "read side", response=DocumentPage,
         params=(_int("limit", 1, 1000), Param("cursor")),
         scoped=(("name", Resource.READ_MODEL),), needs=P.READ),
    _api("GET", "/read-models/{name}/documents/{key}", "get_read_model_document",
         "One document", "read side", response=ReadModelDocument,
         scoped=(("name", Resource.READ_MODEL), ("key", Resource.DOCUMENT)), needs=P.READ),
    _api("POST", "/read-models/{name}/rebuild", "rebuild_read_model",
         "Re-derive a read model from the archive", "read side", response=LOOSE,
         params=(_RESPOND_ASYNC,), scoped=(("name", Resource.READ_MODEL),), needs=P.OPERATE),
    _api("POST", "/read-models/{name}/replay", "replay_read_model",
         "Re-apply one aggregate's or stream's events", "read side",
         request=_json(ReplayRequest), request_required=False, response=LOOSE,
         params=(_RESPOND_ASYNC,), scoped=(("name", Resource.READ_MODEL),), needs=P.OPERATE),
    # ---------------------------------------------------------------- dead letters
    _api("GET", "/dead-letters", "list_dead_letters", "Dead letters (filters, keyset paging)",
         "dead letters", response=LOOSE, params=DLQ_FILTERS, needs=P.READ),
    _api("POST", "/dead-letters/redrive", "redrive_dead_letters",
         "Redrive every dead letter matching a filter", "dead letters",
         request=_json(DeadLetterRedriveFilter), response=LOOSE, needs=P.OPERATE,
         params=(_RESPOND_ASYNC,)),
    _api("GET", "/dead-letters/{dlq_id}", "get_dead_letter", "One dead letter, untouched",
         "dead letters", response=LOOSE, params=UNATTRIBUTED, scoped=(("dlq_id", DL),),
         needs=P.READ),
    _api("POST", "/dead-letters/{dlq_id}/redrive", "redrive_dead_letter",
         "Redrive one dead letter (keeps its event id)", "dead letters", response=LOOSE,
         params=UNATTRIBUTED, scoped=(("dlq_id", DL),), needs=P.OPERATE),
    # ---------------------------------------------------------------- personal data (ADR 0018)
    # data subjects are named per tenant (like stream names): B erasing "alice" erases B's
    _api("POST", "/subjects/{subject_id}/erase", "erase_subject",
         "Erase a data subject: destroy its keys, so its personal fields read as erased",
         "personal data", response=ERASURE, scoped=(("subject_id", Resource.DATA_SUBJECT),),
         needs=P.ADMIN),
    # ---------------------------------------------------------------- audit trail (ADR 0017)
    _api("GET", "/audit", "list_audit_entries", "The tenant's audit log, oldest first",
         "audit", response=LOOSE, params=(_int("after", 0), _int("limit", 1, 1000)),
         needs=P.ADMIN),
    _api("GET", "/audit/proof/{entry}", "get_audit_proof",
         "Inclusion proof of an entry in a signed checkpoint, optionally a consistency proof",
         "audit", response=LOOSE, params=(_int("tree_size", 1), _int("from_size", 1)),
         scoped=(("entry", Resource.AUDIT_ENTRY),), needs=P.ADMIN),
    _api("GET", "/audit/checkpoint", "get_audit_checkpoint",
         "The latest signed checkpoint and the public key", "audit", response=LOOSE,
         needs=P.ADMIN),
    _api("POST", "/audit/checkpoint", "create_audit_checkpoint",
         "Sign a checkpoint of the tenant's log now", "audit", response=LOOSE, needs=P.ADMIN),
    _api("GET", "/jobs/{job_id}", "get_job", "A long operation's status and progress",
         "dead letters", response=LOOSE, scoped=(("job_id", Resource.JOB),), needs=P.READ),
    # ---------------------------------------------------------------- quotas (ADR 0016)
    _api("GET", "/quotas", "get_quotas", "The caller's tenant quotas (effective, overrides)",
         "quotas", response=QuotaDocument, needs=P.READ),
    _api("PUT", "/quotas", "put_quotas",
         "Override the tenant's quotas (the platform's operators; not the tenant's admins); "
         "null restores a default", "quotas",
         request=_json(QuotaUpdate), response=QuotaDocument, needs=P.LIMITS),
    # ---------------------------------------------------------------- schema registry (seed)
    _api("GET", "/schemas", "list_schemas", "Registered schemas", "schemas", response=LOOSE,
         params=(Param("event_type"), _flag("include_deleted"), _flag("active_only")),
         needs=P.READ),
    _api("POST", "/schemas", "register_schema", "Register a schema version", "schemas",
         request=_json(SchemaRegistrationRequest), response=SchemaRegistrationResponse,
         status=201, needs=P.ADMIN),
    _api("POST", "/schemas/enhanced", "register_schema_enhanced",
         "Register with compatibility level, evolution strategy and business rules", "schemas",
         request=_json(EnhancedSchemaRegistrationRequest), response=SchemaRegistrationResponse,
         status=201, needs=P.ADMIN),
    _api("GET", "/schemas/evolution/{event_type}", "get_schema_evolution",
         "An event type's schema history", "schemas", response=EvolutionHistory,
         scoped=(("event_type", Resource.EVENT_TYPE),), needs=P.READ),
    _api("GET", "/schemas/{schema_id}", "get_schema", "One schema version (sch_… or number)",
         "schemas", response=LOOSE, scoped=(("schema_id", Resource.SCHEMA),), needs=P.READ),
    _api("POST", "/schemas/{schema_id}/validate", "validate_against_schema",
         "Validate a payload against a schema", "schemas", request=_json({}),
         response=ValidationResult, scoped=(("schema_id", Resource.SCHEMA),), needs=P.READ),
    # ---------------------------------------------------------------- event sourcing
    _api("POST", "/event-sourcing/append", "append_event",
         "Append to an aggregate (optimistic concurrency)", "event sourcing",
         request=_json(SourcingAppendRequest), response=AppendResponse, status=201,
         needs=P.PUBLISH),
    _api("POST", "/event-sourcing/reconstruct", "reconstruct_aggregate",
         "Rebuild an aggregate's state", "event sourcing",
         request=_json(SourcingReconstructRequest), response=ReconstructResponse, needs=P.READ),
    _api("GET", "/event-sourcing/aggregate/{aggregate_id}/events", "list_aggregate_events",
         "An aggregate's events by version", "event sourcing", response=LOOSE,
         params=(_int("from_version", 1), _int("limit", 1), Param("aggregate_type")),
         scoped=(("aggregate_id", Resource.AGGREGATE),), needs=P.READ),
    _api("GET", "/event-sourcing/aggregate/{aggregate_id}/state", "get_aggregate_state",
         "An aggregate's state, now or as of a version or time", "event sourcing",
         response=ReconstructResponse,
         params=(_int("as_of_version", 0), Param("as_of_time", TIME), Param("aggregate_type")),
         scoped=(("aggregate_id", Resource.AGGREGATE),), needs=P.READ),
    # ---------------------------------------------------------------- subscriptions
    _api("GET", "/subscriptions", "list_subscriptions", "The tenant's subscriptions",
         "subscriptions", response=LOOSE, params=(Param("status"),), needs=P.READ),
    _api("POST", "/subscriptions", "create_subscription", "Subscribe (webhook or WebSocket)",
         "subscriptions", request=_json(SubscriptionCreate), response=LOOSE, status=201,
         needs=P.SUBSCRIBE),
    _api("GET", "/subscriptions/{subscription_id}", "get_subscription", "A subscription",
         "subscriptions", response=LOOSE,
         scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.READ),
    _api("DELETE", "/subscriptions/{subscription_id}", "cancel_subscription",
         "Cancel a subscription", "subscriptions", response=LOOSE,
         scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.SUBSCRIBE),
    _api("GET", "/subscriptions/{subscription_id}/status", "get_subscription_status",
         "Delivery counters, lag and circuit state", "subscriptions",
         response=SubscriptionStatusResponse,
         scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.READ),
    _api("POST", "/subscriptions/{subscription_id}/replay", "replay_subscription",
         "Redeliver from a time or offsets; answers with a job (GET /jobs/{id}) that succeeds "
         "when the end offsets of the request are redelivered", "subscriptions",
         request=_json(SubscriptionReplay), response=LOOSE, status=202,
         scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.OPERATE),
    _api("POST", "/subscriptions/{subscription_id}/rotate-secret", "rotate_subscription_secret",
         "Rotate the webhook secret (old one valid for a grace period)", "subscriptions",
         response=LOOSE, params=(Param("grace_s", {"type": "number", "minimum": 0,
                                                   "maximum": 30 * 86400}),),
         scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.SUBSCRIBE),
    # ---------------------------------------------------------------- consumer groups
    _api("GET", "/consumer-groups", "list_consumer_groups", "The tenant's consumer groups",
         "consumer groups", response=LOOSE, needs=P.READ),
    _api("POST", "/consumer-groups", "create_consumer_group", "Create a consumer group",
         "consumer groups", request=_json(ConsumerGroupCreate), response=LOOSE, status=201,
         needs=P.SUBSCRIBE),
    _api("GET", "/consumer-groups/{group_id}/lag", "get_consumer_group_lag",
         "Lag per partition", "consumer groups", response=ConsumerLagResponse,
         scoped=(("group_id", Resource.CONSUMER_GROUP),), needs=P.READ),
    _api("POST", "/consumer-groups/{group_id}/rebalance", "rebalance_consumer_group",
         "Trigger a rebalance", "consumer groups", response=LOOSE, status=202,
         scoped=(("group_id", Resource.CONSUMER_GROUP),), needs=P.OPERATE),
    # ---------------------------------------------------------------- stream processing
    _api("GET", "/stream-processors", "list_processors", "The tenant's stream processors",
         "stream processing", response=LOOSE, needs=P.READ),
    _api("POST", "/stream-processors", "create_processor", "Define a stream processor",
         "stream processing", request=_json(StreamProcessorDefinition), response=LOOSE,
         status=201, needs=P.ADMIN),
    _api("GET", "/stream-processors/{processor_id}", "get_processor", "A stream processor",
         "stream processing", response=LOOSE, scoped=(("processor_id", Resource.PROCESSOR),),
         needs=P.READ),
    _api("POST", "/stream-processors/{processor_id}/start", "start_processor", "Start it",
         "stream processing", response=LOOSE, scoped=(("processor_id", Resource.PROCESSOR),),
         needs=P.OPERATE),
    _api("POST", "/stream-processors/{processor_id}/stop", "stop_processor", "Stop it",
         "stream processing", response=LOOSE, scoped=(("processor_id", Resource.PROCESSOR),),
         needs=P.OPERATE),
    _api("GET", "/stream-processors/{processor_id}/metrics", "get_processor_metrics",
         "Throughput, lag, watermarks", "stream processing", response=LOOSE,
         scoped=(("processor_id", Resource.PROCESSOR),), needs=P.READ),
    _api("GET", "/patterns", "list_patterns", "The tenant's CEP patterns", "stream processing",
         response=LOOSE, needs=P.READ),
    _api("POST", "/patterns", "create_pattern", "Define a CEP pattern", "stream processing",
         request=_json(PatternCreate), response=LOOSE, status=201, needs=P.ADMIN),
    _api("GET", "/patterns/{pattern_id}", "get_pattern", "A pattern", "stream processing",
         response=LOOSE, scoped=(("pattern_id", Resource.PATTERN),), needs=P.READ),
    _api("POST", "/patterns/{pattern_id}/start", "start_pattern", "Start it",
         "stream processing", response=LOOSE, scoped=(("pattern_id", Resource.PATTERN),),
         needs=P.OPERATE),
    _api("POST", "/patterns/{pattern_id}/stop", "stop_pattern", "Stop it", "stream processing",
         response=LOOSE, scoped=(("pattern_id", Resource.PATTERN),), needs=P.OPERATE),
    _api("GET", "/patterns/{pattern_id}/matches", "get_pattern_matches",
         "Counters and recent matches", "stream processing", response=LOOSE,
         scoped=(("pattern_id", Resource.PATTERN),), needs=P.READ),
    # ---------------------------------------------------------------- Confluent-compatible
    _reg("GET", "/subjects", "cf_list_subjects", "Subjects",
         response=LIST_OF_STRINGS, params=(_flag("deleted"), Param("subjectPrefix")), needs=P.READ),
    _reg("POST", "/subjects/{subject}", "cf_lookup_schema", "Is this schema under the subject?",
         body=CONFLUENT_SCHEMA, params=(_flag("deleted"),), scoped=SUBJ, needs=P.READ),
    _reg("DELETE", "/subjects/{subject}", "cf_delete_subject", "Delete a subject",
         response={"type": "array", "items": {"type": "integer"}},
         params=(_flag("permanent"),), scoped=SUBJ, needs=P.ADMIN),
    _reg("GET", "/subjects/{subject}/versions", "cf_list_versions", "A subject's versions",
         response={"type": "array", "items": {"type": "integer"}}, params=(_flag("deleted"),),
         scoped=SUBJ, needs=P.READ),
    _reg("POST", "/subjects/{subject}/versions", "cf_register", "Register under a subject",
         body=CONFLUENT_SCHEMA, scoped=SUBJ, needs=P.ADMIN),
    _reg("GET", "/subjects/{subject}/versions/{version}", "cf_get_version",
         "A version (number or latest)", params=(_flag("deleted"),), scoped=SUBJ_VER, needs=P.READ),
    _reg("DELETE", "/subjects/{subject}/versions/{version}", "cf_delete_version",
         "Delete a version", response={"type": "integer"}, params=(_flag("permanent"),),
         scoped=SUBJ_VER, needs=P.ADMIN),
    _reg("GET", "/subjects/{subject}/versions/{version}/schema", "cf_get_version_schema",
         "A version's schema text", response={}, scoped=SUBJ_VER, needs=P.READ),
    _reg("GET", "/subjects/{subject}/versions/{version}/referencedby", "cf_referenced_by",
         "Ids referring to a version (none: references are not supported)",
         response={"type": "array", "items": {"type": "integer"}}, scoped=SUBJ_VER, needs=P.READ),
    _reg("GET", "/schemas/types", "cf_schema_types", "Supported schema types",
         response=LIST_OF_STRINGS, needs=P.READ),
    _reg("GET", "/schemas/ids/{schema_id}", "cf_get_schema_by_id", "A schema by global id",
         scoped=CF_ID, needs=P.READ),
    _reg("GET", "/schemas/ids/{schema_id}/schema", "cf_get_raw_schema_by_id",
         "A schema's text by id", response={}, scoped=CF_ID, needs=P.READ),
    _reg("GET", "/schemas/ids/{schema_id}/versions", "cf_get_schema_id_versions",
         "(subject, version) pairs of an id", response={"type": "array"}, scoped=CF_ID,
         needs=P.READ),
    _reg("GET", "/schemas/ids/{schema_id}/subjects", "cf_get_schema_id_subjects",
         "Subjects of an id", response=LIST_OF_STRINGS, scoped=CF_ID, needs=P.READ),
    _reg("POST", "/compatibility/subjects/{subject}/versions", "cf_check_compatibility_all",
         "Compatible with every version the level requires?", body=CONFLUENT_SCHEMA,
         params=(_flag("verbose"),), scoped=SUBJ, needs=P.READ),
    _reg("POST", "/compatibility/subjects/{subject}/versions/{version}", "cf_check_compatibility",
         "Compatible with one version?", body=CONFLUENT_SCHEMA, params=(_flag("verbose"),),
         scoped=SUBJ_VER, needs=P.READ),
    _reg("GET", "/config", "cf_get_config", "Global compatibility level", needs=P.READ),
    _reg("PUT", "/config", "cf_put_config", "Set the global level", body=CONFLUENT_LEVEL,
         needs=P.ADMIN),
    _reg("DELETE", "/config", "cf_delete_config", "Reset the global level", needs=P.ADMIN),
    _reg("GET", "/config/{subject}", "cf_get_subject_config", "A subject's level",
         params=(_flag("defaultToGlobal"),), scoped=SUBJ, needs=P.READ),
    _reg("PUT", "/config/{subject}", "cf_put_subject_config", "Set a subject's level",
         body=CONFLUENT_LEVEL, scoped=SUBJ, needs=P.ADMIN),
    _reg("DELETE", "/config/{subject}", "cf_delete_subject_config", "Reset a subject's level",
         scoped=SUBJ, needs=P.ADMIN),
    _reg("GET", "/mode", "cf_get_mode", "Always READWRITE", needs=P.READ),
    _reg("GET", "/mode/{subject}", "cf_get_subject_mode", "Always READWRITE", scoped=SUBJ,
         needs=P.READ),
    _reg("GET", "/contexts", "cf_contexts", "Contexts (only the default)",
         response=LIST_OF_STRINGS, needs=P.READ),
    # ---------------------------------------------------------------- WebSockets (not in OpenAPI)
    Route("GET", "/ws/events/{stream_name}", "ws_live_events",
          "Live tail of a stream (?event_type=glob, ?access_token=)", "live", websocket=True,
          params=(Param("event_type"), Param("access_token")),
          scoped=(("stream_name", S),), needs=P.SUBSCRIBE),
    Route("GET", "/ws/subscriptions/{subscription_id}", "ws_subscription_updates",
          "Delivery updates, or the matching events (?mode=events)", "live", websocket=True,
          params=(Param("mode", {"type": "string", "enum": ["events"]}),
                  Param("access_token")),
          scoped=(("subscription_id", Resource.SUBSCRIPTION),), needs=P.SUBSCRIBE),
    Route("GET", "/ws/monitoring", "ws_monitoring",
          "Throughput, latency, error rate and lag of the tenant's streams every second "
          '(send {"type": "subscribe", "streams": [...], "metrics": [...]})', "live",
          websocket=True, params=(Param("access_token"),), needs=P.READ),
)


#: OpenAPI links (stateful fuzzing): after ``source`` succeeds, ``target`` with these parameters
#: taken from its answer. Only the cheap, obvious ones: a create followed by reads of what it made.
LINKS: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "create_stream": {"get_stream": {"stream_id": "$response.body#/stream_id"},
                      "list_stream_events": {"stream_id": "$response.body#/stream_id"}},
    "publish_event": {"get_event": {"event_id": "$response.body#/event_id"},
                      "get_processing_history": {"event_id": "$response.body#/event_id"}},
    "register_schema": {"get_schema": {"schema_id": "$response.body#/schema_id"},
                        "validate_against_schema": {"schema_id": "$response.body#/schema_id"}},
    "append_event": {"list_aggregate_events": {"aggregate_id": "$response.body#/aggregate_id"},
                     "get_aggregate_state": {"aggregate_id": "$response.body#/aggregate_id"}},
    "create_subscription": {
        op: {"subscription_id": "$response.body#/subscription_id"}
        for op in ("get_subscription", "get_subscription_status", "replay_subscription",
                   "rotate_subscription_secret", "cancel_subscription")},
    "create_consumer_group": {
        op: {"group_id": "$response.body#/group_id"}
        for op in ("get_consumer_group_lag", "rebalance_consumer_group")},
    "create_processor": {
        op: {"processor_id": "$response.body#/processor_id"}
        for op in ("get_processor", "start_processor", "stop_processor", "get_processor_metrics")},
    "create_pattern": {
        op: {"pattern_id": "$response.body#/pattern_id"}
        for op in ("get_pattern", "start_pattern", "stop_pattern", "get_pattern_matches")},
    "create_read_model": {
        op: {"name": "$response.body#/read_model/name"}
        for op in ("get_read_model", "list_read_model_documents", "rebuild_read_model",
                   "replay_read_model", "delete_read_model")},
}


def http_routes(routes: Iterable[Route] = ROUTES) -> tuple[Route, ...]:
    """Rows the OpenAPI document describes (WebSocket upgrades are listed, not described)."""
    return tuple(r for r in routes if not r.websocket)


def public_paths(routes: Iterable[Route] = ROUTES) -> frozenset[str]:
    """Paths served without a token: what the auth middleware should exempt."""
    return frozenset(r.path for r in routes if r.public)


def by_operation(routes: Iterable[Route] = ROUTES) -> dict[str, Route]:
    return {r.operation_id: r for r in routes}


def by_method_path(routes: Iterable[Route] = ROUTES) -> dict[tuple[str, str], Route]:
    """``(method, path template)`` -> row: how the middleware finds a request's row."""
    return {(r.method, r.path): r for r in routes}


def check_table(routes: Iterable[Route] = ROUTES) -> None:
    """Raise ValueError on a malformed table: duplicate keys, scoped params not in the path."""
    seen_ops: set[str] = set()
    seen_keys: set[tuple[str, str]] = set()
    for r in routes:
        if r.operation_id in seen_ops:
            raise ValueError(f"duplicate operation id {r.operation_id}")
        if (r.method, r.path) in seen_keys:
            raise ValueError(f"duplicate route {r.method} {r.path}")
        seen_ops.add(r.operation_id)
        seen_keys.add((r.method, r.path))
        unknown = {p for p, _ in r.scoped} - set(r.path_params)
        if unknown:
            raise ValueError(f"{r.operation_id}: scoped {sorted(unknown)} not in {r.path}")
        if r.public and r.scoped:
            raise ValueError(f"{r.operation_id}: a public route cannot carry tenant ids")
        if r.public != (r.needs is Permission.PUBLIC):
            raise ValueError(f"{r.operation_id}: public rows, and only they, need "
                             "Permission.PUBLIC")


# ------------------------------------------------------------------ OpenAPI 3.1

REF = "#/components/schemas/{model}"


class _Components:
    """Collects pydantic schemas with one shared ``$defs`` namespace (pydantic names them,
    adding Input/Output suffixes where a model differs between request and response)."""

    def __init__(self) -> None:
        self.wanted: list[tuple[int, Literal["validation", "serialization"],
                                TypeAdapter[Any]]] = []
        self.names: dict[int, str] = {}

    def add(self, body: Body, mode: Literal["validation", "serialization"]) -> None:
        key = id(body)
        if any(k == key and m == mode for k, m, _ in self.wanted):
            return
        if isinstance(body, Typed):
            self.wanted.append((key, mode, TypeAdapter(body.annotation)))
            self.names[id(body)] = body.name
        elif isinstance(body, type) and issubclass(body, BaseModel):
            self.wanted.append((key, mode, TypeAdapter(body)))

    def build(self) -> tuple[dict[tuple[int, str], Any], dict[str, Any]]:
        if not self.wanted:
            return {}, {}
        refs, defs = TypeAdapter.json_schemas(self.wanted, ref_template=REF)
        components: dict[str, Any] = dict(defs.get("$defs", {}))
        out: dict[tuple[int, str], Any] = {}
        for key, schema in refs.items():
            name = self.names.get(key[0])
            if name is not None and "$ref" not in schema:  # a union: give it a component name
                components[name] = schema
                schema = {"$ref": REF.format(model=name)}
            out[key] = schema
        return out, components


def _schema_of(body: Body, mode: Literal["validation", "serialization"],
               resolved: Mapping[tuple[int, str], Any]) -> Any:
    if isinstance(body, Typed) or (isinstance(body, type) and issubclass(body, BaseModel)):
        return resolved[(id(body), mode)]
    return dict(body)


def _error_responses(route: Route) -> dict[str, Any]:
    if route.errors == "confluent":
        content = {CONFLUENT_JSON: {"schema": {"$ref": REF.format(model="ConfluentError")}}}
    else:
        content = {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}}
    descriptions = {400: "malformed request", 401: "no or invalid bearer token",
                    403: "not allowed (another tenant's data, missing role)",
                    404: "no such resource for this tenant", 409: "conflicts with current state",
                    413: "body too large", 422: "well-formed but invalid (errors[].path)",
                    429: "rate limited (Retry-After)"}
    statuses = list(ERROR_STATUSES) if not route.public else []
    return {str(s): {"description": descriptions[s], "content": content} for s in statuses}


def openapi_document(routes: Iterable[Route] = ROUTES, *, version: str = "0.1.0"
                     ) -> dict[str, Any]:
    """An OpenAPI 3.1 document for the HTTP rows of the table."""
    rows = http_routes(routes)
    collector = _Components()
    for r in rows:
        for _, body in r.request:
            collector.add(body, "validation")
        if r.response is not None:
            collector.add(r.response, "serialization")
    resolved, components = collector.build()
    components["Problem"] = dict(PROBLEM)
    components["ConfluentError"] = dict(CONFLUENT_ERROR)

    paths: dict[str, dict[str, Any]] = {}
    for r in rows:
        op: dict[str, Any] = {"operationId": r.operation_id, "summary": r.summary,
                              "tags": [r.tag], "x-esb-needs": r.needs.value}  # ADR 0015
        params = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1}} for p in r.path_params]
        params += [{"name": p.name, "in": p.location, "required": p.required,
                    "schema": dict(p.schema), **({"description": p.description}
                                                  if p.description else {})} for p in r.params]
        if params:
            op["parameters"] = params
        if r.request:
            op["requestBody"] = {"required": r.request_required, "content": {
                ctype: {"schema": _schema_of(body, "validation", resolved)}
                for ctype, body in r.request}}
        ok: dict[str, Any] = {"description": "success"}
        if r.response is not None and r.status != 204:
            ok["content"] = {r.response_type: {"schema": _schema_of(r.response,
                                                                    "serialization", resolved)}}
        links = LINKS.get(r.operation_id, {})
        if links:
            ok["links"] = {f"to_{target}": {"operationId": target, "parameters": dict(params)}
                           for target, params in links.items()}
        op["responses"] = {str(r.status): ok, **_error_responses(r)}
        if r.path == "/health":
            op["responses"]["503"] = {"description": "degraded",
                                      "content": {JSON: {"schema": LOOSE}}}
        if r.public:
            op["security"] = []
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Event Streaming Bus", "version": version,
                 "description": "Generated from esb.api_spec.ROUTES. Errors are RFC 9457 "
                                "problem+json (the Confluent-compatible API uses Confluent's "
                                "error bodies)."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    }
