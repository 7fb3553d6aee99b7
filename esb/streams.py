"""Streams: a tenant's named event log, backed by one Kafka topic per priority lane.

Definitions live in the metadata catalog (compacted topic), so every replica resolves streams from
memory. ``StreamDirectory.resolve`` is on the hot path and answers from a cache that the catalog
invalidates whenever a stream changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esb.catalog import CatalogState, MetadataCatalog
from esb.errors import AlreadyExists, NotFound, ValidationFailed
from esb.globs import compile_globs
from esb.kafka import COMPRESSION, TopicAdmin, TopicSpec
from esb.topics import NAME_RE, Priority, TopicNames, check_name

if TYPE_CHECKING:
    from esb.quotas.limits import QuotaBook

KIND = "stream"
_FIELD_PATH = r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}(\.[A-Za-z0-9_$-]{1,64}){0,15}$"


class StreamCreate(BaseModel):
    """The seed's stream configuration (``POST /api/v1/streams``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    stream_name: str = Field(..., pattern=NAME_RE.pattern)
    topic_name: str | None = Field(None, max_length=200, description="label only; topics are derived")
    source_capability: str | None = Field(None, max_length=256)
    event_types: list[str] = Field(default_factory=list, description="globs routed here by default")
    description: str | None = Field(None, max_length=2000)
    partitions: int = Field(6, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    retention_time_ms: int | None = Field(604_800_000, ge=-1)
    retention_size_bytes: int | None = Field(None, ge=-1)
    retention_policy: dict[str, int | None] | None = None
    compression_type: str = "NONE"
    compression: str | None = None
    default_serialization: Literal["JSON", "AVRO", "PROTOBUF"] = "JSON"
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    tenant_id: str | None = None
    personal_fields: list[Annotated[str, Field(pattern=_FIELD_PATH)]] = Field(
        default_factory=list, max_length=64,
        description="dotted paths into the event data encrypted per data subject (ADR 0018)")
    subject_field: str | None = Field(
        None, pattern=_FIELD_PATH,
        description="path of the data subject's id in the data; default: the aggregate id")

    @model_validator(mode="after")
    def _personal_needs_json(self) -> StreamCreate:
        if self.personal_fields and self.default_serialization != "JSON":
            raise ValueError("personal_fields need default_serialization JSON")
        return self

    @field_validator("compression_type", "compression", mode="before")
    @classmethod
    def _codec(cls, value: Any) -> Any:
        if value is None:
            return value
        upper = str(value).upper()
        if upper not in COMPRESSION:
            raise ValueError(f"must be one of {', '.join(COMPRESSION)}")
        return upper

    @field_validator("default_serialization", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def normalised(self) -> StreamCreate:
        """Fold the seed's two spellings (flat fields / retention_policy, compression) into one."""
        update: dict[str, Any] = {}
        if self.retention_policy:
            update["retention_time_ms"] = self.retention_policy.get("time_ms", self.retention_time_ms)
            update["retention_size_bytes"] = self.retention_policy.get(
                "size_bytes", self.retention_size_bytes)
        if self.compression:
            update["compression_type"] = self.compression
        return self.model_copy(update=update)


def stream_id_for(name: str) -> str:
    return f"str_{name}"


def stream_name_from(ref: str) -> str:
    return ref[4:] if ref.startswith("str_") else ref


def on_stream_written(catalog: MetadataCatalog, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a stream record reaches this replica's catalog (created,
    changed or deleted, on any replica). Its topics exist by then: :meth:`StreamService.create`
    makes them before it writes the record."""
    catalog.add_listener(lambda key, _value: callback() if key.startswith(KIND + "/") else None)


class StreamDirectory:
    """Resolves which stream an event goes to. Pure: reads CatalogState, caches answers."""

    def __init__(self, state: CatalogState, topics: TopicNames) -> None:
        self._state = state
        self._topics = topics
        self._cache: dict[tuple[str, str | None, str, str | None], dict[str, Any] | None] = {}

    def invalidate(self, key: str, _value: Any = None) -> None:
        if key.startswith(KIND + "/"):
            self._cache.clear()

    def get(self, tenant: str, ref: str) -> dict[str, Any] | None:
        return self._state.get(KIND, tenant, stream_name_from(ref))

    def list(self, tenant: str) -> list[dict[str, Any]]:
        return sorted(self._state.list(KIND, tenant), key=lambda s: s["stream_name"])

    def resolve(self, tenant: str, hint: str | None, event_type: str,
                source: str | None) -> dict[str, Any] | None:
        """Explicit stream, else the first stream whose event_types match, else by source."""
        cache_key = (tenant, hint, event_type, source)
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        found: dict[str, Any] | None
        if hint:
            found = self.get(tenant, hint)
        else:
            streams = self.list(tenant)
            found = next((s for s in streams
                          if compile_globs(s.get("event_types", ()))(event_type)), None)
            if found is None and source:
                found = next((s for s in streams if s.get("source_capability") == source), None)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[cache_key] = found
        return found


class StreamService:
    """Create and read streams; topics first, then the catalog record (topic creation is idempotent)."""

    def __init__(self, catalog: MetadataCatalog, admin: TopicAdmin, topics: TopicNames, *,
                 ingress_partitions: int = 6, ingress_replication: int = 1,
                 quotas: QuotaBook | None = None) -> None:
        self.ingress_partitions = ingress_partitions
        self.quotas = quotas
        self.ingress_replication = ingress_replication
        self.catalog = catalog
        self.admin = admin
        self.topics = topics
        self.directory = StreamDirectory(catalog.current, topics)
        catalog.add_listener(self.directory.invalidate)

    async def create(self, request: StreamCreate, *, tenant: str, user: str) -> dict[str, Any]:
        if self.quotas is None:
            return await self._create(request, tenant=tenant, user=user)
        async with self.quotas.counting(tenant, "streams"):  # count and create at once
            return await self._create(request, tenant=tenant, user=user)

    async def _create(self, request: StreamCreate, *, tenant: str, user: str) -> dict[str, Any]:
        req = request.normalised()
        check_name("stream_name", req.stream_name)
        if self.directory.get(tenant, req.stream_name) is not None:
            raise AlreadyExists(f"stream {req.stream_name!r} already exists",
                                stream_id=stream_id_for(req.stream_name))
        if self.quotas is not None:  # before any topic is created (ADR 0016)
            mine = self.directory.list(tenant)
            self.quotas.check_count(tenant, "max_streams", len(mine))
            self.quotas.check_count(tenant, "max_partitions",
                                    sum(int(s.get("partitions", 0)) for s in mine), req.partitions)
        brokers = await self.admin.broker_count()
        if req.replication_factor > brokers:
            raise ValidationFailed(
                f"replication_factor {req.replication_factor} exceeds the {brokers} broker(s) "
                "in the cluster",
                errors=[{"path": "$.replication_factor",
                         "message": f"at most {brokers} on this cluster"}],
            )
        configs = {"cleanup.policy": req.cleanup_policy,
                   "compression.type": COMPRESSION[req.compression_type] or "producer"}
        if req.retention_time_ms is not None:
            configs["retention.ms"] = str(req.retention_time_ms)
        if req.retention_size_bytes is not None:
            configs["retention.bytes"] = str(req.retention_size_bytes)
        lane_topics = self.topics.stream_topics(tenant, req.stream_name)
        await self.admin.ensure_topics(
            [TopicSpec(t, req.partitions, req.replication_factor, configs) for t in lane_topics]
            # the tenant's own ingress, for Kafka-native producers (idempotent after the first)
            + [TopicSpec(t, self.ingress_partitions, self.ingress_replication)
               for t in self.topics.tenant_ingress_topics(tenant)])
        record = {
            "stream_id": stream_id_for(req.stream_name),
            "stream_name": req.stream_name,
            "tenant_id": tenant,
            "topic_name": req.topic_name or self.topics.stream_base(tenant, req.stream_name),
            "topics": {p.value: self.topics.stream_lane(tenant, req.stream_name, p)
                       for p in Priority},
            "source_capability": req.source_capability,
            "event_types": req.event_types,
            "description": req.description,
            "partitions": req.partitions,
            "replication_factor": req.replication_factor,
            "retention_policy": {"time_ms": req.retention_time_ms,
                                 "size_bytes": req.retention_size_bytes},
            "compression_type": req.compression_type,
            "default_serialization": req.default_serialization,
            "cleanup_policy": req.cleanup_policy,
            "personal_fields": req.personal_fields,
            "subject_field": req.subject_field,
            "status": "ACTIVE",
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "created_by": user,
        }
        outcome = await self.catalog.write(KIND, tenant, req.stream_name, "create", record)
        if outcome.status != "created":
            raise AlreadyExists(f"stream {req.stream_name!r} already exists",
                                stream_id=stream_id_for(req.stream_name))
        return record

    async def get(self, tenant: str, ref: str) -> dict[str, Any]:
        stream = self.directory.get(tenant, ref)
        if stream is None:
            await self.catalog.sync()  # created a moment ago on another replica?
            stream = self.directory.get(tenant, ref)
        if stream is None:
            raise NotFound(f"stream {ref!r} not found", stream_id=ref)
        return stream
