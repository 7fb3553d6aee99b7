"""Processor and pattern definitions as metadata: created, listed, started and stopped.

Definitions live in the metadata catalog (kinds ``processor`` and ``pattern``, keyed by name so a
name is unique per tenant in log order), so every replica sees them. A ``RUNNING`` status makes
every replica run the job (see ``agents.processors``); stopping flips it back. Everything a job
needs to start is checked at creation (expressions, windows, streams, plugin config), so a
started job does not fail on its definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from esb import ids
from esb.catalog import MetadataCatalog
from esb.errors import AlreadyExists, NotFound, ValidationFailed
from esb.processing.cep import parse_pattern
from esb.processing.custom import load_processor
from esb.processing.models import (
    ErrorHandlingStrategy,
    ProcessorType,
    parse_processor_definition,
    validation_failed,
)
from esb.quotas.limits import QuotaBook
from esb.streams import StreamCreate, StreamDirectory, StreamService, stream_id_for

PROCESSOR_KIND = "processor"
PATTERN_KIND = "pattern"
CREATED, RUNNING, STOPPED, FAILED = "CREATED", "RUNNING", "STOPPED", "FAILED"
DEFAULT_ALERTS_STREAM = "alerts"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{ids.ulid().lower()}"


class PatternOptions(BaseModel):
    """The runtime half of a pattern body (the rest is the pattern itself)."""

    model_config = ConfigDict(extra="forbid")

    pattern_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = Field(default=None, max_length=2000)
    source_stream_id: str = Field(min_length=1)
    alerts_stream_id: str = DEFAULT_ALERTS_STREAM
    timers: Literal["wall_clock", "event_time"] = "wall_clock"
    timer_lag_ms: int = Field(default=2000, ge=0, le=3_600_000)
    parallelism: int = Field(default=1, ge=1, le=1024)
    error_handling_strategy: ErrorHandlingStrategy = ErrorHandlingStrategy.DEAD_LETTER
    # True when producers already partition the source by key_field: skips the re-key stage.
    co_partitioned: bool = False


OPTION_FIELDS = frozenset(PatternOptions.model_fields)


@dataclass
class JobCatalog:
    """Shared create/read/status logic for both kinds of job."""

    catalog: MetadataCatalog
    kind: str
    id_field: str
    name_field: str
    quotas: QuotaBook | None = None  # counts per tenant (ADR 0016): max_processors/max_patterns

    def list(self, tenant: str) -> list[dict[str, Any]]:
        return sorted(self.catalog.current.list(self.kind, tenant),
                      key=lambda r: r["created_at"])

    def get(self, tenant: str, ref: str) -> dict[str, Any]:
        """By id (``proc_…``/``pat_…``) or by name."""
        for record in self.catalog.current.list(self.kind, tenant):
            if ref in (record[self.id_field], record[self.name_field]):
                return record
        raise NotFound(f"{self.kind} {ref!r} not found", **{self.id_field: ref})

    async def insert(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        if self.quotas is None:
            return await self._insert(tenant, record)
        async with self.quotas.counting(tenant, self.kind):  # count and create at once
            return await self._insert(tenant, record)

    async def _insert(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        name = record[self.name_field]
        if self.quotas is not None:
            self.quotas.check_count(tenant, "max_processors" if self.kind == PROCESSOR_KIND
                                    else "max_patterns",
                                    len(self.catalog.current.list(self.kind, tenant)))
        outcome = await self.catalog.write(self.kind, tenant, name, "create", record)
        if outcome.status != "created":
            existing = outcome.data or {}
            raise AlreadyExists(f"{self.kind} {name!r} already exists",
                                **{self.id_field: existing.get(self.id_field)})
        return record

    async def set_status(self, tenant: str, ref: str, status: str,
                         error: str | None = None) -> dict[str, Any]:
        record = dict(self.get(tenant, ref))
        record["status"] = status
        record["updated_at"] = _now()
        record["last_error"] = error
        if status == RUNNING:
            record["started_at"] = record["updated_at"]
        await self.catalog.write(self.kind, tenant, record[self.name_field], "put", record)
        return record


def _stream(directory: StreamDirectory, tenant: str, ref: str, path: str) -> dict[str, Any]:
    stream = directory.get(tenant, ref)
    if stream is None:
        raise ValidationFailed(f"{path}: stream {ref!r} not found",
                               errors=[{"path": path, "message": f"stream {ref!r} not found"}])
    return stream


class ProcessorService(JobCatalog):
    def __init__(self, catalog: MetadataCatalog, directory: StreamDirectory, *,
                 quotas: QuotaBook | None = None) -> None:
        super().__init__(catalog, PROCESSOR_KIND, "processor_id", "processor_name", quotas)
        self.directory = directory

    async def create(self, body: Any, *, tenant: str, user: str) -> dict[str, Any]:
        definition = parse_processor_definition(body)
        source = _stream(self.directory, tenant, definition.source_stream_id, "source_stream_id")
        target = _stream(self.directory, tenant, definition.target_stream_id, "target_stream_id")
        if definition.processor_type == ProcessorType.JOIN:
            other = _stream(self.directory, tenant, definition.logic.join_stream_id,
                            "processing_logic.join_stream_id")
            if other["stream_name"] == source["stream_name"]:
                raise ValidationFailed(
                    "JOIN needs two different streams",
                    errors=[{"path": "processing_logic.join_stream_id",
                             "message": "must differ from source_stream_id"}])
            if definition.co_partitioned and other["partitions"] != source["partitions"]:
                raise ValidationFailed(
                    "JOIN needs co-partitioned streams (the same number of partitions)",
                    errors=[{"path": "processing_logic.join_stream_id",
                             "message": f"{other['partitions']} partitions, source has "
                                        f"{source['partitions']}"}])
        if definition.processor_type == ProcessorType.CUSTOM:
            load_processor(definition.logic.entry_point, definition.logic.config)
        now = _now()
        record = {
            "processor_id": _new_id("proc"),
            "processor_name": definition.processor_name,
            "processor_description": definition.processor_description,
            "processor_type": definition.processor_type.value,
            "tenant_id": tenant,
            "source_stream_id": stream_id_for(source["stream_name"]),
            "target_stream_id": stream_id_for(target["stream_name"]),
            "parallelism": definition.parallelism,
            "error_handling_strategy": definition.error_handling_strategy.value,
            "definition": definition.model_dump(mode="json"),
            "status": CREATED,
            "created_at": now,
            "updated_at": now,
            "created_by": user,
            "last_error": None,
        }
        return await self.insert(tenant, record)


class PatternService(JobCatalog):
    def __init__(self, catalog: MetadataCatalog, streams: StreamService,
                 partitions: int, *, quotas: QuotaBook | None = None) -> None:
        super().__init__(catalog, PATTERN_KIND, "pattern_id", "pattern_name", quotas)
        self.streams = streams
        self.partitions = partitions

    async def create(self, body: Any, *, tenant: str, user: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationFailed("pattern body must be a JSON object",
                                   errors=[{"path": "", "message": "expected an object"}])
        try:
            options = PatternOptions.model_validate(
                {k: v for k, v in body.items() if k in OPTION_FIELDS})
        except ValidationError as exc:
            raise validation_failed(exc, "invalid pattern") from None
        pattern_id = _new_id("pat")
        spec = {k: v for k, v in body.items() if k not in OPTION_FIELDS}
        pattern = parse_pattern({**spec, "pattern_id": pattern_id})
        source = _stream(self.streams.directory, tenant, options.source_stream_id,
                         "source_stream_id")
        alerts = await self.ensure_alerts_stream(tenant, options.alerts_stream_id, user)
        now = _now()
        record = {
            "pattern_id": pattern_id,
            "pattern_name": options.pattern_name,
            "description": options.description,
            "kind": pattern.kind,
            "tenant_id": tenant,
            "source_stream_id": stream_id_for(source["stream_name"]),
            "alerts_stream_id": stream_id_for(alerts["stream_name"]),
            "timers": options.timers,
            "timer_lag_ms": options.timer_lag_ms,
            "co_partitioned": options.co_partitioned,
            "parallelism": options.parallelism,
            "error_handling_strategy": options.error_handling_strategy.value,
            "definition": pattern.model_dump(mode="json", exclude={"pattern_id"}),
            "status": CREATED,
            "created_at": now,
            "updated_at": now,
            "created_by": user,
            "last_error": None,
        }
        return await self.insert(tenant, record)

    async def ensure_alerts_stream(self, tenant: str, ref: str, user: str) -> dict[str, Any]:
        """The tenant's alerts stream, created on first use: subscribe to it like any stream."""
        existing = self.streams.directory.get(tenant, ref)
        if existing is not None:
            return existing
        request = StreamCreate(stream_name=ref.removeprefix("str_"),
                               source_capability="event_streaming_bus",
                               description="alerts emitted by complex event processing patterns",
                               partitions=self.partitions)
        try:
            return await self.streams.create(request, tenant=tenant, user=user)
        except AlreadyExists:
            return await self.streams.get(tenant, ref)
