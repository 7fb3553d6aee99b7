"""The schema registry wired onto the metadata log: one :class:`SchemaRegistryState` per worker.

Every registry record is a metadata-catalog record of kind ``schema`` keyed by its unique
``record_id`` (so compaction never drops one: ids are assigned at apply time from every earlier
record). :class:`RegistryReducer` folds them into the state on every replica; a record the state
rejects (incompatible, invalid, unknown subject) becomes an ``Outcome("rejected")`` carrying the
error, which only the writer re-raises. Reads never leave memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from esb.catalog import CatalogState, Outcome
from esb.errors import EsbError, NotFound, ValidationFailed
from esb.quotas.limits import QuotaBook
from esb.schemas.models import (
    CompatibilityLevel,
    SchemaRegistrationRequest,
    SchemaType,
    SchemaVersion,
)
from esb.schemas.parsing import canonical_schema_text
from esb.schemas.registry import (
    AnyRecord,
    ConfigSet,
    SchemaDeleted,
    SchemaRegistered,
    SchemaRegistryState,
    parse_record,
    record_from_request,
    subject_for_event_type,
)
from esb.schemas.rules import compile_rules
from esb.schemas.validation import parsed_avro_schema
from esb.schemas.wire import encode_avro

log = logging.getLogger(__name__)

KIND = "schema"
APPLIED = "applied"
REJECTED = "rejected"


class RegistryReducer:
    """Catalog reducer for kind ``schema``: records go to the registry state, not to ``items``."""

    def __init__(self, state: SchemaRegistryState,
                 on_change: Callable[[], None] | None = None) -> None:
        self.state = state
        self.on_change = on_change

    def apply(self, catalog: CatalogState, key: str, record: dict[str, Any] | None) -> Outcome:
        if record is None or record.get("data") is None:  # tombstones never come from us
            return Outcome("ignored", None)
        try:
            result = self.state.apply(parse_record(record["data"]))
        except EsbError as exc:
            return Outcome(REJECTED, {"error": exc})
        except Exception as exc:  # a bug must not stop the log for the other kinds
            log.exception("schema registry record %s could not be applied", key)
            return Outcome(REJECTED, {"error": EsbError(f"registry record not applied: {exc}")})
        if self.on_change is not None:
            self.on_change()
        return Outcome(APPLIED, {"result": result})


class CatalogWriter(Protocol):
    async def write(self, kind: str, tenant: str, name: str, op: str,
                    data: dict[str, Any] | None = None, *, timeout: float = 15.0) -> Outcome: ...


class SchemaRegistryService:
    """Writes go through the log (read-your-writes); reads answer from ``state``."""

    def __init__(self, catalog: CatalogWriter, state: SchemaRegistryState | None = None, *,
                 quotas: QuotaBook | None = None) -> None:
        self.catalog = catalog
        self.quotas = quotas
        self.state = state or SchemaRegistryState()
        self._listeners: list[Callable[[], None]] = []
        self.reducer = RegistryReducer(self.state, self._changed)

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Called after every applied record (e.g. to drop caches of resolved schemas)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    async def write(self, record: AnyRecord) -> Any:
        """Append ``record``; return what the state decided, or raise the error it raised."""
        outcome = await self.catalog.write(KIND, record.tenant_id, record.record_id, "put",
                                           record.model_dump(mode="json"))
        if outcome.status == REJECTED and outcome.data is not None:
            raise outcome.data["error"]
        if outcome.status != APPLIED or outcome.data is None:
            raise EsbError(f"schema registry record {record.record_id} was not applied")
        return outcome.data["result"]

    # ---------------------------------------------------------------- write operations

    async def register(self, record: SchemaRegistered) -> SchemaVersion:
        if self.quotas is None:
            return await self._register(record)
        async with self.quotas.counting(record.tenant_id, "schemas"):  # count and create at once
            return await self._register(record)

    async def _register(self, record: SchemaRegistered) -> SchemaVersion:
        # what does not parse never reaches the log (the state would reject it the same way)
        canonical_schema_text(record.schema_type, record.schema_text)
        compile_rules(record.validation_rules.business_rules)
        subjects = self.state.list_subjects(record.tenant_id)
        if self.quotas is not None and record.subject not in subjects:  # a new subject counts
            self.quotas.check_count(record.tenant_id, "max_schemas", len(subjects))
        result = await self.write(record)
        assert isinstance(result, SchemaVersion)
        return result

    async def register_request(self, request: SchemaRegistrationRequest, *, tenant: str,
                               user: str | None) -> tuple[SchemaVersion, bool]:
        """Register a seed REST body; the flag says whether a new version was created."""
        record = record_from_request(request, tenant, datetime.now(UTC), user)
        version = await self.register(record)
        return version, version.created_at == record.created_at

    async def delete(self, tenant: str, subject: str, version: int | None = None,
                     permanent: bool = False) -> list[int]:
        result = await self.write(SchemaDeleted(tenant_id=tenant, subject=subject,
                                                version=version, permanent=permanent))
        assert isinstance(result, list)
        return result

    async def set_level(self, tenant: str, subject: str | None,
                        level: CompatibilityLevel | None) -> CompatibilityLevel:
        result = await self.write(ConfigSet(tenant_id=tenant, subject=subject,
                                            compatibility_level=level))
        assert isinstance(result, CompatibilityLevel)
        return result

    # ---------------------------------------------------------------- serialization

    def encode_for_avro_stream(self, tenant: str, event_type: str, data: bytes
                               ) -> tuple[bytes, str]:
        """The AVRO-stream encoder: JSON in, Confluent wire-format Avro out (422 without an
        Avro schema for the type, since an AVRO stream must not store JSON)."""
        encoded = self.to_avro_wire(tenant, event_type, data)
        if encoded is None:
            raise ValidationFailed(
                f"stream stores AVRO but no Avro schema is registered for {event_type!r}",
                errors=[{"path": "$", "message": "no Avro schema for this event type"}])
        return encoded, "application/avro"

    def to_avro_wire(self, tenant: str, event_type: str, data: bytes) -> bytes | None:
        """JSON event data as Confluent wire-format Avro, for streams that store AVRO.

        Uses the latest live schema of the event type when it is Avro; None when there is none
        (the caller keeps the JSON). Meant for the publisher once it has a transform hook.
        """
        try:
            version = self.state.latest(tenant, subject_for_event_type(event_type))
        except NotFound:
            return None
        if version.schema_type is not SchemaType.AVRO:
            return None
        try:
            return encode_avro(version.id, parsed_avro_schema(version.schema_text),
                               json.loads(data))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValidationFailed(
                f"event cannot be written as Avro schema {version.schema_id}: {exc}",
                errors=[{"path": "$", "message": str(exc)}]) from None
